"""The chart gives the API the broker's admin account only when asked, from a Secret."""

from __future__ import annotations

from tests.helm_support import env_of, load_chart, render, secret_refs


def test_the_broker_admin_password_comes_only_from_a_named_secret() -> None:
    chart = load_chart()
    plain = render(chart)
    _, pod = plain.component("Deployment", "api").pod_template()
    api = pod["containers"][0]
    assert "F5G_API__BROKER_ADMIN_PASSWORD" not in env_of(api)

    out = render(chart, {"api": {"brokerAdminSecret": "mosquitto-admin"}})
    _, pod = out.component("Deployment", "api").pod_template()
    api = pod["containers"][0]
    ref = env_of(api)["F5G_API__BROKER_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "mosquitto-admin", "key": "password"}
    assert ("mosquitto-admin", "password") in secret_refs(pod)
    # No other workload gets it.
    for kind, component in (("Deployment", "ingest"), ("StatefulSet", "rules")):
        _, other = out.component(kind, component).pod_template()
        assert ("mosquitto-admin", "password") not in secret_refs(other)
