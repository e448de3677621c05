"""The notifier in the Helm chart: off by default; when enabled a Deployment with its own
database login user, probes, metrics Service, ServiceMonitor, egress to the receivers and
the "notifications undelivered" alert with its runbook; without its login user the chart
refuses to render, naming the value."""

from __future__ import annotations

import os
from collections.abc import Iterator

import helm_python as helm
import pytest

from services.core.settings import load_settings
from tests.helm_support import (
    NAMESPACE,
    OPERATIONS_DOC,
    RELEASE,
    Obj,
    deep_merge,
    env_of,
    fullname,
    lint_problems,
    load_chart,
    render,
    validate_manifest,
    with_credentials,
)

NOTIFY_URL = "postgresql://f5g_notify:pw-notify@timescaledb:5432/factory5g"
ENABLED: Obj = {
    "notify": {"enabled": True, "dashboardUrl": "https://factory5g.example.com"},
    "database": {"serviceUrls": {"notify": NOTIFY_URL}},
    "networkPolicy": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True, "runbookBaseUrl": "https://docs.example.com/ops"},
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with load_chart() as loaded:
        yield loaded


def test_off_by_default(chart: helm.Chart) -> None:
    out = render(chart, {"prometheusRule": {"enabled": True}})
    assert not [m for m in out.manifests if "notify" in m.name]


def test_enabled_renders_a_complete_notifier(chart: helm.Chart) -> None:
    out = render(chart, ENABLED)
    name = f"{fullname()}-notify"
    deployment = out.get("Deployment", name)
    validate_manifest(deployment)
    (container,) = deployment.obj["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["notify"]
    env = env_of(container)
    assert env["F5G_NOTIFY__METRICS_PORT"]["value"] == "9104"
    assert env["F5G_NOTIFY__DASHBOARD_URL"]["value"] == "https://factory5g.example.com"
    assert env["F5G_DATABASE__URL"]["valueFrom"]["secretKeyRef"]["key"] == "url-notify"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    validate_manifest(out.get("Service", name))
    assert out.get("ServiceMonitor", name)
    policy = out.get("NetworkPolicy", name)
    ports = {p["port"] for rule in policy.obj["spec"]["egress"] for p in rule.get("ports", [])}
    assert {443, 587, 465} <= ports
    (rule,) = out.of_kind("PrometheusRule")
    alerts = {r["alert"]: r for g in rule.obj["spec"]["groups"] for r in g["rules"]}
    alert = alerts["Factory5gNotificationsUndelivered"]
    assert "factory5g_notify_oldest_undelivered_age_seconds" in alert["expr"]
    assert f'namespace="{NAMESPACE}"' in alert["expr"]
    assert alert["annotations"]["runbook_url"].endswith("#factory5gnotificationsundelivered")
    assert "### Factory5gNotificationsUndelivered" in OPERATIONS_DOC.read_text()


def test_enabled_without_its_login_user_fails_naming_the_value(chart: helm.Chart) -> None:
    values = with_credentials(deep_merge(ENABLED, {}))
    values["database"]["serviceUrls"].pop("notify")
    with pytest.raises(helm.HelmRenderError, match=r"database\.serviceUrls\.notify"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def test_enabled_lints_clean() -> None:
    assert lint_problems(with_credentials(ENABLED)) == []


def test_private_targets_are_refused_unless_named(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secure by default: the chart names no private network for the channels, so a webhook
    cannot be pointed at an in-cluster service; `notify.allowPrivateTargets` is the named
    opt-out, and the settings the API and the notifier read from it are the ones given."""
    default = render(chart, ENABLED).config_env()
    assert "F5G_NOTIFY__ALLOW_PRIVATE_TARGETS" not in default

    networks = ["10.20.0.0/16", "receiver.plant.svc"]
    config = render(chart, deep_merge(ENABLED, {"notify": {"allowPrivateTargets": networks}}))
    value = config.config_env()["F5G_NOTIFY__ALLOW_PRIVATE_TARGETS"]
    for name in list(os.environ):
        if name.upper().startswith("F5G_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("F5G_NOTIFY__ALLOW_PRIVATE_TARGETS", value)
    assert load_settings().notify.allow_private_targets == networks
    # Both readers get it: the API (checks a channel when saved) and the notifier (sends).
    for component in ("api", "notify"):
        (container,) = config.workload(component).obj["spec"]["template"]["spec"]["containers"]
        refs = [s["configMapRef"]["name"] for s in container.get("envFrom") or []]
        assert f"{fullname()}-config" in refs, component

    bad = deep_merge(ENABLED, {"notify": {"allowPrivateTargets": [""]}})
    with pytest.raises(helm.HelmValuesError, match="/notify/allowPrivateTargets/0"):
        chart.render(with_credentials(bad), name=RELEASE, namespace=NAMESPACE)
