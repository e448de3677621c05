"""The chart gives each service its own database login user when the values name one."""

from __future__ import annotations

import base64

from tests.helm_support import Rendered, fullname, load_chart, render, secret_refs

SERVICES = {"ingest": "StatefulSet", "rules": "StatefulSet", "api": "Deployment"}


def _workload_refs(out: Rendered, component: str) -> list[tuple[str, str]]:
    for manifest in out.workloads():
        if manifest.name == f"{fullname()}-{component}":
            return secret_refs(manifest.pod_template()[1])
    raise AssertionError(f"no workload {component}")


def test_service_urls_become_keys_of_the_database_secret() -> None:
    urls = {s: f"postgresql://f5g_{s}:pw@db:5432/factory5g" for s in SERVICES}
    with load_chart() as chart:
        out = render(chart, {"database": {"serviceUrls": urls}})
    secret_name = f"{fullname()}-database"
    data = out.get("Secret", secret_name).obj["data"]
    for service, url in urls.items():
        assert base64.b64decode(data[f"url-{service}"]).decode() == url
        assert (secret_name, f"url-{service}") in _workload_refs(out, service)
        assert (secret_name, "url") not in _workload_refs(out, service)
    # Migrations keep the owner's URL (the chart's pre-install hook Secret).
    job_keys = {key for m in out.of_kind("Job") for _, key in secret_refs(m.pod_template()[1])}
    assert job_keys == {"url"}


def test_without_service_urls_every_service_shares_the_url() -> None:
    with load_chart() as chart:
        out = render(chart, {})
    for service in SERVICES:
        assert (f"{fullname()}-database", "url") in _workload_refs(out, service)


def test_existing_secret_service_keys() -> None:
    values = {
        "database": {
            "existingSecret": "tsdb",
            "existingSecretKey": "owner",
            "existingSecretServiceKeys": {"ingest": "ingest-uri", "rules": "", "api": "api-uri"},
        }
    }
    with load_chart() as chart:
        out = render(chart, values)
    assert ("tsdb", "ingest-uri") in _workload_refs(out, "ingest")
    assert ("tsdb", "owner") in _workload_refs(out, "rules")
    assert ("tsdb", "api-uri") in _workload_refs(out, "api")


def test_each_service_gets_its_own_broker_account() -> None:
    accounts = {s: {"username": s, "password": f"pw-{s}"} for s in (*SERVICES, "simulator")}
    values = {"mqtt": {"serviceCredentials": accounts}, "simulator": {"enabled": True}}
    with load_chart() as chart:
        out = render(chart, values)
    secret_name = f"{fullname()}-mqtt"
    data = out.get("Secret", secret_name).obj["data"]
    for service in accounts:
        assert base64.b64decode(data[f"username-{service}"]).decode() == service
        refs = _workload_refs(out, service)
        assert (secret_name, f"username-{service}") in refs
        assert (secret_name, f"password-{service}") in refs
