"""The chart's secure defaults: credentials, per-service database roles, MQTT accounts and
TLS are required (the error names the value), NetworkPolicies are on, and only an explicit
`security.insecure` renders without them."""

from __future__ import annotations

import base64
import copy
from typing import Any

import helm_python as helm
import pytest

from tests.helm_support import (
    CREDENTIALS,
    NAMESPACE,
    RELEASE,
    Obj,
    Rendered,
    env_of,
    fullname,
    load_chart,
    render,
    secret_refs,
    validate_manifest,
)

SERVICES = {
    "ingest": "StatefulSet",
    "rules": "StatefulSet",
    "api": "Deployment",
    "commands": "StatefulSet",
}


def _workload_refs(out: Rendered, component: str) -> list[tuple[str, str]]:
    for manifest in out.workloads():
        if manifest.name == f"{fullname()}-{component}":
            return secret_refs(manifest.pod_template()[1])
    raise AssertionError(f"no workload {component}")


def _without(path: str, value: Any = "") -> Obj:
    """CREDENTIALS with the value at dotted `path` replaced (by default emptied)."""
    values = copy.deepcopy(CREDENTIALS)
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node[key]
    node[last] = value
    return values


def _render_error(values: Obj) -> str:
    with load_chart() as chart, pytest.raises(helm.HelmRenderError) as excinfo:
        chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return str(excinfo.value)


def test_a_default_install_without_credentials_fails_naming_the_value() -> None:
    assert "database.url must carry the schema owner's password" in _render_error({})


@pytest.mark.parametrize(
    ("values", "named"),
    [
        pytest.param(
            _without("database.url", "postgresql://factory5g@db:5432/factory5g"),
            "database.url",
            id="owner-without-password",
        ),
        *(
            pytest.param(_without(f"database.serviceUrls.{c}"), f"database.serviceUrls.{c}", id=c)
            for c in SERVICES
        ),
        pytest.param(
            _without("database.serviceUrls.api", "postgresql://f5g_api@db:5432/factory5g"),
            "database.serviceUrls.api",
            id="service-without-password",
        ),
        pytest.param(
            {**_without("database.url", ""), "database": {"existingSecret": "tsdb"}},
            "database.existingSecretServiceKeys.ingest",
            id="existing-secret-without-service-keys",
        ),
        pytest.param(_without("mqtt.tls.enabled", False), "mqtt.tls.enabled", id="no-tls"),
        *(
            pytest.param(
                _without(f"mqtt.serviceCredentials.{c}", {"username": "", "password": ""}),
                f"mqtt.serviceCredentials.{c}",
                id=f"mqtt-{c}",
            )
            for c in SERVICES
        ),
        pytest.param(
            _without("mqtt.serviceCredentials.rules.password"),
            "mqtt.serviceCredentials.rules.password",
            id="mqtt-user-without-password",
        ),
        pytest.param(
            {
                **_without("mqtt.serviceCredentials.simulator", {"username": "", "password": ""}),
                "simulator": {"enabled": True},
            },
            "mqtt.serviceCredentials.simulator",
            id="mqtt-simulator",
        ),
    ],
)
def test_each_missing_credential_fails_the_render_naming_it(values: Obj, named: str) -> None:
    message = _render_error(values)
    assert f"{named} " in message, message
    assert "security.insecure" in message, message


def test_the_complete_credentials_render() -> None:
    with load_chart() as chart:
        out = render(chart, credentials=False, values=copy.deepcopy(CREDENTIALS))
    for manifest in out.manifests:
        validate_manifest(manifest)
    assert "WARNING" not in out.notes


def test_insecure_opt_out_renders_without_credentials_and_warns() -> None:
    with load_chart() as chart:
        out = render(chart, {"security": {"insecure": True}}, credentials=False)
    for manifest in out.manifests:
        validate_manifest(manifest)
    assert "WARNING: security.insecure is set" in out.notes
    # Without service URLs every service falls back to the shared URL: only here.
    for service in SERVICES:
        assert (f"{fullname()}-database", "url") in _workload_refs(out, service)
    # Network isolation does not depend on the opt-out.
    assert len(out.of_kind("NetworkPolicy")) == 6


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


def test_no_service_gets_the_owner_url_by_default() -> None:
    with load_chart() as chart:
        out = render(chart, {"simulator": {"enabled": True}})
    for component in (*SERVICES, "simulator"):
        assert (f"{fullname()}-database", "url") not in _workload_refs(out, component)
    assert (f"{fullname()}-database", "url-simulator") in _workload_refs(out, "simulator")


def test_simulator_without_a_role_of_its_own_gets_no_database() -> None:
    """Never the owner's URL: without serviceUrls.simulator it has no database at all (it
    then publishes without naming its projects) and its policy opens no database port."""
    values = {"simulator": {"enabled": True}, "database": {"serviceUrls": {"simulator": ""}}}
    with load_chart() as chart:
        out = render(chart, values)
    _, pod = out.component("Deployment", "simulator").pod_template()
    (container,) = pod["containers"]
    assert "F5G_DATABASE__URL" not in env_of(container)
    spec = out.component("NetworkPolicy", "simulator").obj["spec"]
    ports = {p["port"] for rule in spec["egress"] for p in rule.get("ports", [])}
    assert 5432 not in ports


def test_existing_secret_service_keys() -> None:
    values = {
        "database": {
            "existingSecret": "tsdb",
            "existingSecretKey": "owner",
            "existingSecretServiceKeys": {
                "ingest": "ingest-uri",
                "rules": "rules-uri",
                "api": "api-uri",
                "simulator": "sim-uri",
                "commands": "commands-uri",
            },
        },
        "simulator": {"enabled": True},
    }
    with load_chart() as chart:
        out = render(chart, values)
    assert ("tsdb", "ingest-uri") in _workload_refs(out, "ingest")
    assert ("tsdb", "rules-uri") in _workload_refs(out, "rules")
    assert ("tsdb", "api-uri") in _workload_refs(out, "api")
    assert ("tsdb", "sim-uri") in _workload_refs(out, "simulator")
    assert ("tsdb", "owner") in _workload_refs(out, "migrate")
    for component in (*SERVICES, "simulator"):
        assert ("tsdb", "owner") not in _workload_refs(out, component)


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
