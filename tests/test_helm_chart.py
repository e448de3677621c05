"""The Helm chart, its examples and the container image definition, checked offline.

Renders with the Helm v4 engine of `helm-python-sdk`, lints with warnings counted as failures,
validates every object against the Kubernetes schemas of `kubernetes-validate`, and checks
the operational contract: secure pods, probes, shard and client-id wiring, Secrets that can
come from elsewhere, configuration the services accept, and metrics named in one list.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from services.core.settings import ConfigError, load_settings
from tests.helm_support import (
    CHART_DIR,
    KUBE_VERSION,
    NAMESPACE,
    OPERATIONS_DOC,
    RELEASE,
    REPO_ROOT,
    SERVICE_COMPONENTS,
    STANDARD_LABELS,
    Manifest,
    Obj,
    Rendered,
    containers,
    deep_merge,
    env_of,
    example_files,
    fullname,
    lint_problems,
    load_chart,
    metric_names,
    promtool,
    read_values,
    render,
    secret_refs,
    undocumented_values,
    validate_manifest,
    with_credentials,
)

FULLNAME = fullname()
UID = 10001

# Every optional feature on, to render (and so validate) every template.
ALL_FEATURES: Obj = {
    "image": {"digest": "sha256:" + "ab" * 32},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "commonLabels": {"example.com/site": "plant-1"},
    "serviceAccount": {"annotations": {"example.com/role": "factory5g"}},
    "mqtt": {
        "port": 8883,
        "username": "factory5g",
        "password": "s3cret",
        "tls": {
            "enabled": True,
            "existingSecret": "mqtt-tls",
            "certKey": "tls.crt",
            "keyKey": "tls.key",
        },
    },
    "migrations": {"podAnnotations": {"example.com/migrate": "yes"}},
    "ingest": {
        "autoscaling": {"enabled": True},
        "extraEnv": [{"name": "F5G_INGEST__BATCH_MAX_ROWS", "value": "1000"}],
        "podAnnotations": {"example.com/team": "plant"},
        "podLabels": {"example.com/tier": "data"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "iot"}],
        "priorityClassName": "factory5g-high",
        "topologySpreadConstraints": [
            {
                "maxSkew": 2,
                "topologyKey": "example.com/rack",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "ingest"}},
            }
        ],
    },
    "rules": {"replicas": 3, "rulesFile": "rules:\n  - id: example\n"},
    "api": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"secretName": "api-tls", "hosts": ["factory5g.local"]}],
        },
        "autoscaling": {"enabled": True},
    },
    "simulator": {"enabled": True},
    "networkPolicy": {
        "enabled": True,
        "apiIngressFrom": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}],
        "metricsIngressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        "extraEgress": [{"ports": [{"port": 443, "protocol": "TCP"}]}],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "prometheusRule": {
        "enabled": True,
        "runbookBaseUrl": "https://docs.example.com/factory5g/operations",
        "alertLabels": {"team": "plant"},
    },
    "grafanaDashboard": {"enabled": True, "namespace": "monitoring"},
}

EXISTING_SECRETS: Obj = {
    "database": {
        "existingSecret": "tsdb-app",
        "existingSecretKey": "uri",
        "existingSecretServiceKeys": {
            c: f"uri-{c}" for c in ("ingest", "rules", "api", "commands")
        },
    },
    "mqtt": {
        "existingSecret": "broker-login",
        "existingSecretUsernameKey": "user",
        "existingSecretPasswordKey": "pass",
    },
    "api": {"existingSecret": "api-keys", "existingSecretKey": "bootstrap"},
    "simulator": {"enabled": True},
}

# Complete value sets: the chart's defaults and every feature with the credentials a secure
# install must give, and the examples exactly as shipped (they must be complete themselves).
VALUE_SETS: dict[str, Obj] = {
    "default": with_credentials({}),
    "all-features": with_credentials(ALL_FEATURES),
}
VALUE_SETS.update({f"example:{p.name}": read_values(p) for p in example_files()})

# What an operator's own Secret would hold, for settings whose format is checked at start.
EXTERNAL_SECRET_PLACEHOLDERS = {"F5G_API__BOOTSTRAP_KEY": "f5g_0123456789_" + "x" * 43}

REQUIRED_ALERTS = {
    "Factory5gIngestLagHigh",
    "Factory5gDeadLetterRateHigh",
    "Factory5gConsumerDisconnected",
    "Factory5gDatabaseUnreachable",
    "Factory5gApi5xxRateHigh",
    "Factory5gTargetDown",
    "Factory5gNotificationsUndelivered",
    "Factory5gNotificationDeliveriesFailing",
    "Factory5gCommanderDisconnected",
    "Factory5gCommandsExpiring",
    "Factory5gCommandsFailing",
}
# Every feature and both optional services whose metrics the chart lists (the notifier and
# the commander): what the monitoring tests render.
MONITORED: Obj = deep_merge(
    ALL_FEATURES,
    {
        "notify": {"enabled": True},
        "commands": {"enabled": True},
        "database": {
            "serviceUrls": {"notify": "postgresql://f5g_notify:pw-notify@timescaledb:5432/f5g"}
        },
    },
)


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with load_chart() as loaded:
        yield loaded


@pytest.fixture(scope="module")
def default(chart: helm.Chart) -> Rendered:
    return render(chart)


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, chart: helm.Chart) -> Rendered:
    return render(chart, VALUE_SETS[request.param], credentials=False)


# --- chart files -----------------------------------------------------------------------------


def test_chart_metadata(chart: helm.Chart) -> None:
    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "factory5g"
    assert meta["appVersion"] == "0.1.0"
    assert meta["type"] == "application"
    names = {t["name"] for t in chart.templates}
    assert {"templates/_helpers.tpl", "templates/NOTES.txt"} <= names


def test_helpers_define_the_standard_names() -> None:
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    for name in ("name", "fullname", "chart", "labels", "selectorLabels", "serviceAccountName"):
        assert f'define "factory5g.{name}"' in helpers, name


def test_examples_exist() -> None:
    assert {p.name for p in example_files()} >= {
        "minimal.yaml",
        "production-ha.yaml",
        "with-simulator.yaml",
    }


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_has_no_errors_or_warnings(name: str) -> None:
    assert lint_problems(VALUE_SETS[name]) == []


def test_every_value_is_documented() -> None:
    assert undocumented_values((CHART_DIR / "values.yaml").read_text()) == []


def test_the_documentation_check_finds_a_bare_key() -> None:
    text = (
        "# -- Documented.\n"
        "a: 1\n"
        "# Section.\n"
        "b:\n"
        "  # -- Documented.\n"
        "  c: 1\n"
        "  d: 2\n"
        "# -- Documents the whole block.\n"
        "e:\n"
        "  f: 1\n"
        "g: {}\n"
    )
    assert undocumented_values(text) == ["b.d", "g"]


def test_schema_is_draft07_and_closed_where_it_matters(chart: helm.Chart) -> None:
    schema = chart.schema
    assert schema is not None
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    closed = [
        "image",
        "database",
        "mqtt",
        "migrations",
        "ingest",
        "rules",
        "api",
        "simulator",
        "networkPolicy",
        "serviceMonitor",
        "prometheusRule",
        "grafanaDashboard",
    ]
    for section in closed:
        assert schema["properties"][section]["additionalProperties"] is False, section
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"ingest": {"replicas": "three"}}, "/ingest/replicas", id="wrong-type"),
        pytest.param({"rules": {"replicas": 0}}, "/rules/replicas", id="below-minimum"),
        pytest.param({"replicaCount": 2}, "replicaCount", id="unknown-top-level-key"),
        pytest.param({"api": {"replica": 2}}, "replica", id="unknown-workload-key"),
        pytest.param({"mqtt": {"hostname": "emqx"}}, "hostname", id="unknown-mqtt-key"),
        pytest.param({"logLevel": "TRACE"}, "/logLevel", id="bad-enum"),
        pytest.param({"mqtt": {"port": 70000}}, "/mqtt/port", id="port-out-of-range"),
        pytest.param({"database": {"url": ""}}, "/database/url", id="missing-database-url"),
        pytest.param({"database": {"url": "mysql://x"}}, "/database/url", id="not-postgres"),
        pytest.param(
            # null removes a default, as `--set ingest.resources.requests.memory=null` does.
            {"ingest": {"resources": {"requests": {"memory": None}}}},
            "memory",
            id="resources-without-memory-request",
        ),
        pytest.param(
            {"ingest": {"probes": {"liveness": {"periodSeconds": "10s"}}}},
            "/ingest/probes",
            id="probe-timing-type",
        ),
        pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="pull-policy"),
        pytest.param(
            {"ingest": {"terminationGracePeriodSeconds": 5}},
            "/ingest/terminationGracePeriodSeconds",
            id="ingest-grace-too-short",
        ),
        pytest.param({"ingest": {"kind": "DaemonSet"}}, "/ingest/kind", id="ingest-kind"),
    ],
)
def test_schema_rejects_invalid_values(chart: helm.Chart, values: Obj, message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as excinfo:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    text = str(excinfo.value)
    assert "schema" in text, text
    assert message in text, text


def test_schema_accepts_a_missing_url_with_an_existing_secret(chart: helm.Chart) -> None:
    chart.validate_schema(
        chart.merge_values({"database": {"url": "", "existingSecret": "tsdb-app"}})
    )


# --- rendered objects ------------------------------------------------------------------------


def test_every_object_validates(rendered: Rendered) -> None:
    assert rendered.manifests
    for manifest in rendered.manifests:
        validate_manifest(manifest)


def test_every_object_has_the_standard_labels(rendered: Rendered) -> None:
    for manifest in rendered.manifests:
        missing = [label for label in STANDARD_LABELS if label not in manifest.labels]
        assert not missing, f"{manifest.kind}/{manifest.name} lacks {missing}"
        assert manifest.labels["app.kubernetes.io/part-of"] == "factory5g"
        assert manifest.labels["app.kubernetes.io/instance"] == RELEASE
        assert manifest.labels["app.kubernetes.io/version"] == "0.1.0"


def test_selectors_match_pod_labels(rendered: Rendered) -> None:
    for manifest in rendered.workloads():
        if manifest.kind not in ("Deployment", "StatefulSet"):
            continue
        selector = manifest.obj["spec"]["selector"]["matchLabels"]
        pod_labels = manifest.pod_template()[0]["labels"]
        assert selector.items() <= pod_labels.items(), manifest.name
        assert "app.kubernetes.io/component" in selector
    services = rendered.of_kind("Service")
    assert services
    for service in services:
        selector = service.obj["spec"]["selector"]
        targets = [
            w
            for w in rendered.workloads()
            if w.kind != "Job" and selector.items() <= w.pod_template()[0]["labels"].items()
        ]
        assert len(targets) == 1, f"Service {service.name} selects {len(targets)} workloads"


def test_secure_defaults_on_every_pod_and_container(rendered: Rendered) -> None:
    workloads = rendered.workloads()
    assert workloads
    for manifest in workloads:
        where = f"{manifest.kind}/{manifest.name}"
        _, pod = manifest.pod_template()
        assert pod["automountServiceAccountToken"] is False, where
        pod_sc = pod["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["runAsUser"] == UID, where
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        tmp_volumes = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
        for container in containers(pod):
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] == UID, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert sc.get("privileged", False) is False, where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1, f"{where}: /tmp"
            assert tmp[0]["name"] in tmp_volumes, f"{where}: /tmp is an emptyDir"


def test_service_account_mounts_no_token(default: Rendered) -> None:
    account = default.get("ServiceAccount", FULLNAME)
    assert account.obj["automountServiceAccountToken"] is False
    for manifest in default.workloads():
        if manifest.kind in ("Deployment", "StatefulSet"):
            assert manifest.pod_template()[1]["serviceAccountName"] == FULLNAME


def _probe_targets(container: Obj) -> dict[str, tuple[str, Any]]:
    return {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }


def test_probes_target_the_health_endpoints(rendered: Rendered) -> None:
    env = rendered.config_env()
    expected = {
        "ingest": ("metrics", "/readyz", env["F5G_INGEST__METRICS_PORT"]),
        "rules": ("metrics", "/readyz", env["F5G_RULES__METRICS_PORT"]),
        "api": ("http", "/readyz", env["F5G_API__PORT"]),
    }
    for component, (port_name, ready_path, port) in expected.items():
        _, pod = rendered.workload(component).pod_template()
        (container,) = pod["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert str(ports[port_name]) == port, component
        probes = _probe_targets(container)
        assert probes["startupProbe"] == ("/healthz", port_name), component
        assert probes["livenessProbe"] == ("/healthz", port_name), component
        assert probes["readinessProbe"] == (ready_path, port_name), component
        assert container["startupProbe"]["failureThreshold"] >= 10, component


def test_services_bind_to_all_interfaces(default: Rendered) -> None:
    env = default.config_env()
    assert env["F5G_INGEST__METRICS_HOST"] == "0.0.0.0"
    assert env["F5G_RULES__METRICS_HOST"] == "0.0.0.0"
    assert env["F5G_API__HOST"] == "0.0.0.0"


def test_each_workload_runs_its_subcommand(chart: helm.Chart) -> None:
    out = render(chart, ALL_FEATURES)
    expected = {
        "ingest": ["ingest"],
        "rules": ["rules"],
        "api": ["api"],
        "simulator": ["simulate"],
        "migrate": ["db", "upgrade"],
    }
    for component, args in expected.items():
        (container,) = out.workload(component).pod_template()[1]["containers"]
        assert "command" not in container, "the image's ENTRYPOINT is factory5g"
        assert container["args"] == args
        assert container["image"] == "factory5g@sha256:" + "ab" * 32


def test_ingest_replicas_have_unique_client_ids(default: Rendered) -> None:
    _, pod = default.component("Deployment", "ingest").pod_template()
    (container,) = pod["containers"]
    env = env_of(container)
    assert env["F5G_INGEST__CLIENT_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "F5G_INGEST__SHARD_INDEX" not in env, "a Deployment has no ordinals"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= 60
    # The service gives up on in-flight batches before the kubelet kills it.
    assert 0 < float(env["F5G_INGEST__SHUTDOWN_TIMEOUT_S"]["value"]) <= grace - 10


@pytest.mark.parametrize("replicas", [1, 4])
def test_ingest_as_statefulset_shards_stateful_protocols(chart: helm.Chart, replicas: int) -> None:
    out = render(chart, {"ingest": {"kind": "StatefulSet", "replicas": replicas}})
    assert not [m for m in out.of_kind("Deployment") if m.name.endswith("-ingest")]
    statefulset = out.component("StatefulSet", "ingest")
    assert statefulset.obj["spec"]["replicas"] == replicas
    service = out.get("Service", statefulset.obj["spec"]["serviceName"])
    assert service.obj["spec"]["clusterIP"] == "None"
    (container,) = statefulset.pod_template()[1]["containers"]
    env = env_of(container)
    assert env["F5G_INGEST__SHARD_COUNT"]["value"] == str(replicas)
    assert env["F5G_INGEST__SHARD_INDEX"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    assert env["F5G_INGEST__CLIENT_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for manifest in out.manifests:
        validate_manifest(manifest)


def test_ingest_statefulset_cannot_autoscale(chart: helm.Chart) -> None:
    values = {"ingest": {"kind": "StatefulSet", "autoscaling": {"enabled": True}}}
    with pytest.raises(helm.HelmValuesError, match="/ingest/autoscaling/enabled"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("replicas", [1, 3, 7])
def test_rules_shards_follow_the_replica_count(chart: helm.Chart, replicas: int) -> None:
    out = render(chart, {"rules": {"replicas": replicas}})
    statefulset = out.component("StatefulSet", "rules")
    assert statefulset.obj["spec"]["replicas"] == replicas
    assert statefulset.obj["spec"]["serviceName"] == out.component("Service", "rules").name
    (container,) = statefulset.pod_template()[1]["containers"]
    env = env_of(container)
    assert env["F5G_RULES__SHARD_COUNT"]["value"] == str(replicas)
    assert env["F5G_RULES__SHARD_INDEX"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    assert env["F5G_RULES__CLIENT_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert not out.of_kind("HorizontalPodAutoscaler"), "rules must never be autoscaled"


def test_migration_job_runs_before_install_and_upgrade(default: Rendered) -> None:
    job = default.component("Job", "migrate")
    assert job.annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in job.annotations["helm.sh/hook-delete-policy"]
    assert "before-hook-creation" in job.annotations["helm.sh/hook-delete-policy"]
    _, pod = job.pod_template()
    assert pod["restartPolicy"] == "Never"
    # Hooks run before the release's objects exist: the Job reads a hook Secret created just
    # before it, and does not name the chart's own ServiceAccount.
    assert "serviceAccountName" not in pod
    ((secret_name, key),) = secret_refs(pod)
    hook_secret = default.get("Secret", secret_name)
    assert hook_secret.annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(hook_secret.annotations["helm.sh/hook-weight"]) < int(
        job.annotations["helm.sh/hook-weight"]
    )
    assert key in hook_secret.obj["data"]


def test_optional_objects_are_gated(default: Rendered, chart: helm.Chart) -> None:
    kinds = {m.kind for m in default.manifests}
    for kind in (
        "HorizontalPodAutoscaler",
        "Ingress",
        "ServiceMonitor",
        "PrometheusRule",
    ):
        assert kind not in kinds, kind
    # NetworkPolicies are on by default; an explicit value turns them off.
    assert "NetworkPolicy" in kinds
    off = render(chart, {"networkPolicy": {"enabled": False}})
    assert not off.of_kind("NetworkPolicy")
    assert "networkPolicy.enabled is false" in off.notes
    assert not [m for m in default.manifests if m.name.endswith("-simulator")]
    out = render(chart, ALL_FEATURES)
    assert {m.name for m in out.of_kind("HorizontalPodAutoscaler")} == {
        f"{FULLNAME}-ingest",
        f"{FULLNAME}-api",
    }
    for component in ("ingest", "api"):
        assert "replicas" not in out.component("Deployment", component).obj["spec"]
    # ingest, rules, api, simulator, commands, the migration Job and the test pod.
    assert len(out.of_kind("NetworkPolicy")) == 7
    assert len(out.of_kind("ServiceMonitor")) == 4
    assert len(out.of_kind("PrometheusRule")) == 1
    assert out.component("Ingress", "api").obj["spec"]["ingressClassName"] == "nginx"


def test_pod_disruption_budgets_and_topology_spread(default: Rendered) -> None:
    budgets = {m.name: m.obj["spec"] for m in default.of_kind("PodDisruptionBudget")}
    for component in SERVICE_COMPONENTS:
        spec = budgets[f"{FULLNAME}-{component}"]
        assert spec["maxUnavailable"] == 1
        assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
    for manifest in default.workloads():
        if manifest.kind in ("Job", "Pod"):
            continue
        constraints = manifest.pod_template()[1]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, manifest.name


@pytest.mark.parametrize("values", [{}, ALL_FEATURES], ids=["default", "all-features"])
def test_network_policies_cover_every_workload(chart: helm.Chart, values: Obj) -> None:
    """The defaults (with credentials) already isolate every pod: each workload, the
    migration Job and the test pod has a policy, with only the egress it needs."""
    out = render(chart, values)
    pods = {m.pod_template()[0]["labels"]["app.kubernetes.io/component"] for m in out.workloads()}
    policies = {
        p.obj["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: p
        for p in out.of_kind("NetworkPolicy")
    }
    assert set(policies) == pods
    broker = out.config_env()["F5G_MQTT__PORT"]
    for component, policy in policies.items():
        spec = policy.obj["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"], component
        egress_ports = {p["port"] for rule in spec["egress"] for p in rule.get("ports", [])}
        assert 53 in egress_ports, component
        assert (int(broker) in egress_ports) == (component not in ("migrate", "test")), component
        assert (5432 in egress_ports) == (component not in ("test",)), component
        if component in ("migrate", "test", "simulator"):
            assert spec["ingress"] == [], component
    # The Job runs before the release's objects exist: its policy is created with it.
    migrate = policies["migrate"]
    job = out.component("Job", "migrate")
    assert migrate.annotations["helm.sh/hook"] == job.annotations["helm.sh/hook"]
    assert int(migrate.annotations["helm.sh/hook-weight"]) < int(
        job.annotations["helm.sh/hook-weight"]
    )


def test_api_ingress_restriction_keeps_the_test_pod(chart: helm.Chart) -> None:
    out = render(chart, ALL_FEATURES)
    spec = out.component("NetworkPolicy", "api").obj["spec"]
    peers = spec["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"name": "ingress"}}} in peers
    test_peer = [p for p in peers if "podSelector" in p]
    assert test_peer[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"


# --- configuration and secrets ---------------------------------------------------------------


def _checksums(out: Rendered) -> dict[str, dict[str, str]]:
    return {
        m.name: {
            k: v for k, v in m.pod_template()[0]["annotations"].items() if k.startswith("checksum/")
        }
        for m in out.workloads()
        if m.kind in ("Deployment", "StatefulSet")
    }


def test_pods_roll_when_configuration_changes(chart: helm.Chart) -> None:
    base = _checksums(render(chart, {"simulator": {"enabled": True}}))
    changed = _checksums(
        render(chart, {"simulator": {"enabled": True}, "ingest": {"batchMaxRows": 1000}})
    )
    secret = _checksums(
        render(chart, {"simulator": {"enabled": True}, "mqtt": {"password": "rotated"}})
    )
    assert base.keys() == changed.keys()
    assert len(base) == 5  # ingest, rules, api, simulator, commands
    for name in base:
        assert base[name]["checksum/config"] != changed[name]["checksum/config"], name
        assert base[name]["checksum/secret"] == changed[name]["checksum/secret"], name
        assert base[name]["checksum/secret"] != secret[name]["checksum/secret"], name
    # A generated bootstrap key is random per render but must not roll the pods.
    assert base == _checksums(render(chart, {"simulator": {"enabled": True}}))


def test_rules_file_is_mounted_from_the_config_map(chart: helm.Chart) -> None:
    rules_yaml = "rules:\n  - id: spindle-overheat\n    when: temperature_c > 90\n"
    out = render(chart, {"rules": {"rulesFile": rules_yaml}})
    path = out.config_env()["F5G_RULES__RULES_FILE"]
    config_map = out.get("ConfigMap", f"{FULLNAME}-rules-file")
    assert config_map.obj["data"]["rules.yaml"] == rules_yaml
    _, pod = out.component("StatefulSet", "rules").pod_template()
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "rules-file"]
    assert path == f"{mount['mountPath']}/rules.yaml"
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == "rules-file"]
    assert volume["configMap"]["name"] == config_map.name
    default = render(chart)
    assert "F5G_RULES__RULES_FILE" not in default.config_env()
    assert not [m for m in default.of_kind("ConfigMap") if m.name.endswith("-rules-file")]


def test_default_secrets_are_created_by_the_chart(default: Rendered) -> None:
    secrets = {m.name: m for m in default.of_kind("Secret") if "helm.sh/hook" not in m.annotations}
    assert set(secrets) == {f"{FULLNAME}-database", f"{FULLNAME}-api", f"{FULLNAME}-mqtt"}
    url = base64.b64decode(secrets[f"{FULLNAME}-database"].obj["data"]["url"]).decode()
    assert url == "postgresql://factory5g:owner-pw@timescaledb:5432/factory5g"
    key = base64.b64decode(secrets[f"{FULLNAME}-api"].obj["data"]["bootstrap-key"]).decode()
    assert len(key) >= 32
    # Every service authenticates to the broker, over TLS.
    assert default.config_env()["F5G_MQTT__TLS"] == "true"
    for manifest in default.workloads():
        if manifest.kind in ("Deployment", "StatefulSet"):
            for container in containers(manifest.pod_template()[1]):
                assert "F5G_MQTT__PASSWORD" in env_of(container), manifest.name


def test_inline_mqtt_credentials_become_a_secret(chart: helm.Chart) -> None:
    # One shared account: no service has its own.
    no_own = {c: {"username": "", "password": ""} for c in ("ingest", "rules", "api", "simulator")}
    out = render(
        chart, {"mqtt": {"username": "plant", "password": "p@ss", "serviceCredentials": no_own}}
    )
    secret = out.get("Secret", f"{FULLNAME}-mqtt").obj["data"]
    assert base64.b64decode(secret["username"]) == b"plant"
    assert base64.b64decode(secret["password"]) == b"p@ss"
    _, pod = out.component("Deployment", "ingest").pod_template()
    assert (f"{FULLNAME}-mqtt", "password") in secret_refs(pod)


def test_every_secret_can_come_from_an_existing_secret(chart: helm.Chart) -> None:
    out = render(chart, EXISTING_SECRETS)
    assert out.of_kind("Secret") == [], "no Secret of the chart's own, not even a hook Secret"
    expected = {
        ("tsdb-app", "uri"),
        *(("tsdb-app", f"uri-{c}") for c in ("ingest", "rules", "api", "commands")),
        ("broker-login", "user"),
        ("broker-login", "pass"),
        ("api-keys", "bootstrap"),
    }
    seen: set[tuple[str, str]] = set()
    for manifest in out.workloads():
        refs = set(secret_refs(manifest.pod_template()[1]))
        assert refs <= expected, f"{manifest.name}: {refs - expected}"
        seen |= refs
    assert seen == expected
    _, api_pod = out.component("Deployment", "api").pod_template()
    assert ("api-keys", "bootstrap") in secret_refs(api_pod)
    _, job_pod = out.component("Job", "migrate").pod_template()
    assert secret_refs(job_pod) == [("tsdb-app", "uri")]
    _, simulator_pod = out.component("Deployment", "simulator").pod_template()
    assert ("tsdb-app", "uri") not in secret_refs(simulator_pod), "least privilege"


def test_mqtt_tls_files_are_mounted(chart: helm.Chart) -> None:
    out = render(chart, ALL_FEATURES)
    env = out.config_env()
    assert env["F5G_MQTT__TLS"] == "true"
    for key in ("F5G_MQTT__CA_FILE", "F5G_MQTT__CERT_FILE", "F5G_MQTT__KEY_FILE"):
        assert env[key].startswith("/etc/factory5g/mqtt-tls/"), key
    _, pod = out.component("Deployment", "ingest").pod_template()
    assert ("mqtt-tls", "") in secret_refs(pod)
    with pytest.raises(helm.HelmRenderError, match="set together"):
        chart.render(
            with_credentials(
                {"mqtt": {"tls": {"enabled": True, "existingSecret": "t", "certKey": "tls.crt"}}}
            ),
            name=RELEASE,
            namespace=NAMESPACE,
        )


def _resolve_env(out: Rendered, manifest: Manifest, container: Obj) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        name = source["configMapRef"]["name"]
        env.update(out.get("ConfigMap", name).obj["data"])
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            path = ref["fieldRef"]["fieldPath"]
            last = manifest.obj["spec"].get("replicas", 1) - 1
            env[item["name"]] = str(last) if "pod-index" in path else f"{manifest.name}-0"
        else:
            secret = ref["secretKeyRef"]
            found = [s for s in out.of_kind("Secret") if s.name == secret["name"]]
            data = found[0].obj["data"] if found else {}
            value = data.get(secret["key"])
            placeholder = EXTERNAL_SECRET_PLACEHOLDERS.get(item["name"], "postgresql://x@db/x")
            env[item["name"]] = base64.b64decode(value).decode() if value else placeholder
    return env


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("F5G_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_services_accept_the_rendered_settings(
    chart: helm.Chart, clean_environment: pytest.MonkeyPatch, name: str
) -> None:
    """Every F5G_* variable a container gets is one the settings model reads and accepts
    (services/core/settings.py forbids unknown keys, so a typo would stop the service)."""
    values = deep_merge(VALUE_SETS[name], {"mqtt": {"username": "u", "password": "p"}})
    values.pop("image", None)
    out = render(chart, values, credentials=False)
    checked = 0
    for manifest in out.workloads():
        if manifest.kind == "Pod":
            continue
        for container in containers(manifest.pod_template()[1]):
            env = _resolve_env(out, manifest, container)
            with clean_environment.context() as patch:
                for variable, value in env.items():
                    patch.setenv(variable, value)
                try:
                    settings = load_settings()
                except ConfigError as exc:
                    pytest.fail(f"{manifest.kind}/{manifest.name}: {exc}")
            checked += 1
            component = manifest.name.rsplit("-", 1)[1]
            if component not in ("ingest", "rules"):
                continue
            section = settings.ingest if component == "ingest" else settings.rules
            assert section.client_id == f"{manifest.name}-0"
            assert section.metrics_host == "0.0.0.0"
            if manifest.kind == "StatefulSet":
                replicas = manifest.obj["spec"]["replicas"]
                assert (section.shard_index, section.shard_count) == (replicas - 1, replicas)
            else:
                assert section.shard_count == 1
    assert checked >= 4


def test_large_numbers_render_as_plain_integers(
    chart: helm.Chart, clean_environment: pytest.MonkeyPatch
) -> None:
    out = render(chart, {"ingest": {"sessionExpirySeconds": 86400 * 30, "batchMaxRows": 200000}})
    env = out.config_env()
    assert env["F5G_INGEST__SESSION_EXPIRY_S"] == "2592000"
    assert env["F5G_INGEST__BATCH_MAX_ROWS"] == "200000"


def test_names_fit_kubernetes_limits(chart: helm.Chart) -> None:
    release = "north-plant-production-line-telemetry-release"
    out = render(chart, ALL_FEATURES, release=release)
    for manifest in out.manifests:
        assert len(manifest.name) <= 63, manifest.name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", manifest.name), manifest.name
        if manifest.kind == "StatefulSet":
            assert len(manifest.name) <= 52, manifest.name


# --- monitoring ------------------------------------------------------------------------------


def test_metrics_list_is_well_formed() -> None:
    names = metric_names()
    assert len(names) == len(set(names)) == 25
    for name in names:
        assert re.fullmatch(r"factory5g_(ingest|rules|api|notify|commands)_[a-z0-9_]+", name), name
    services = {name.split("_")[1] for name in names}
    assert services == {"ingest", "rules", "api", "notify", "commands"}


def _metrics_used(text: str) -> set[str]:
    found = set(re.findall(r"\bfactory5g_[a-z0-9_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in found}


def test_monitoring_with_every_service_lints_and_validates(chart: helm.Chart) -> None:
    assert lint_problems(with_credentials(MONITORED)) == []
    out = render(chart, MONITORED)
    for kind in ("PrometheusRule", "ServiceMonitor", "ConfigMap"):
        for manifest in out.of_kind(kind):
            validate_manifest(manifest)
    monitors = {m.name for m in out.of_kind("ServiceMonitor")}
    assert monitors == {
        f"{fullname()}-{c}" for c in ("ingest", "rules", "api", "notify", "commands")
    }


def test_dashboard_and_alerts_use_only_listed_metrics(chart: helm.Chart) -> None:
    listed = set(metric_names())
    out = render(chart, MONITORED)
    (dashboard,) = [m for m in out.of_kind("ConfigMap") if m.name.endswith("-dashboard")]
    assert dashboard.labels["grafana_dashboard"] == "1"
    assert dashboard.obj["metadata"]["namespace"] == "monitoring"
    (payload,) = dashboard.obj["data"].values()
    board = json.loads(payload)
    exprs = " ".join(t["expr"] for panel in board["panels"] for t in panel.get("targets", []))
    assert _metrics_used(exprs) == listed, "the dashboard shows every listed metric"
    (rule,) = out.of_kind("PrometheusRule")
    alert_exprs = " ".join(r["expr"] for g in rule.obj["spec"]["groups"] for r in g["rules"])
    assert _metrics_used(alert_exprs) <= listed


def test_alerts_are_complete_and_have_runbooks(chart: helm.Chart) -> None:
    out = render(chart, MONITORED)
    (rule,) = out.of_kind("PrometheusRule")
    alerts = {r["alert"]: r for g in rule.obj["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) >= REQUIRED_ALERTS
    doc = OPERATIONS_DOC.read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in doc.splitlines()
        if line.startswith("#")
    }
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        assert alert["labels"]["team"] == "plant", name
        assert alert["annotations"]["summary"], name
        assert "{{" not in alert["expr"], name
        anchor = alert["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == name.lower(), name
        assert anchor in headings, f"no runbook section for {name}"
        assert f'namespace="{NAMESPACE}"' in alert["expr"], name
    for monitor in out.of_kind("ServiceMonitor"):
        assert monitor.labels["release"] == "prometheus"
        selector = monitor.obj["spec"]["selector"]["matchLabels"]
        (service,) = [
            s
            for s in out.of_kind("Service")
            if selector.items() <= s.obj["spec"]["selector"].items()
        ]
        ports = {p["name"] for p in service.obj["spec"]["ports"]}
        assert monitor.obj["spec"]["endpoints"][0]["port"] in ports
        # Alerts select series by job, which the Prometheus Operator sets to the Service name.
        assert service.name in " ".join(a["expr"] for a in alerts.values())


def _run_promtool(*args: str) -> str:
    result = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{output}"
    return output


def _rule_groups(out: Rendered) -> list[Obj]:
    (rule,) = out.of_kind("PrometheusRule")
    return list(rule.obj["spec"]["groups"])


def test_alert_and_dashboard_queries_pass_promtool(chart: helm.Chart, tmp_path: Path) -> None:
    """Every alert and every dashboard query parses as PromQL (`promtool check rules`): a
    typo in a selector would otherwise show up only as an alert that never fires or an
    empty panel."""
    out = render(chart, MONITORED)
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(yaml.safe_dump({"groups": _rule_groups(out)}))
    assert re.search(r"SUCCESS: (\d+) rules found", _run_promtool("check", "rules", str(alerts)))

    board = json.loads((CHART_DIR / "dashboards" / "factory5g-overview.json").read_text())
    records = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            # The Grafana variables, as Grafana substitutes them.
            expr = target["expr"].replace("$namespace", ".+")
            expr = expr.replace("$__rate_interval", "2m")
            assert "$" not in expr, expr
            records.append(
                {"record": f"dashboard:panel{panel['id']}_{target['refId']}", "expr": expr}
            )
    assert len(records) >= len(metric_names())
    queries = tmp_path / "dashboard.yaml"
    queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    output = _run_promtool("check", "rules", str(queries))
    assert f"SUCCESS: {len(records)} rules found" in output


def test_notify_and_commands_alerts_fire_on_their_series(chart: helm.Chart, tmp_path: Path) -> None:
    """The notifier's and the commander's alerts, as rendered, evaluated by Prometheus's own
    rule engine (`promtool test rules`) on series the services export: each fires on the
    fault and stays quiet on healthy series next to it."""
    out = render(chart, MONITORED)
    groups = _rule_groups(out)
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations")  # texts, not behaviour; they would have to be copied here
    labels = {r["alert"]: r["labels"] for g in groups for r in g["rules"]}
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}))
    prefix = f'namespace="{NAMESPACE}", job="{fullname()}-'

    def series(job: str, name: str, values: str, **extra: str) -> Obj:
        more = "".join(f', {k}="{v}"' for k, v in extra.items())
        return {"series": f'{name}{{{prefix}{job}"{more}}}', "values": values}

    def fired(alert: str, **extra: str) -> Obj:
        return {"exp_labels": {**labels[alert], **extra}}

    transitions = "factory5g_commands_transitions_total"
    deliveries = "factory5g_notify_deliveries_total"
    test = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # A commander pod that lost the broker at minute 2; its sibling is fine.
                    series("commands", "factory5g_commands_mqtt_connected", "1 1 0x20", pod="c-0"),
                    series("commands", "factory5g_commands_mqtt_connected", "1x22", pod="c-1"),
                    # VDA 5050 commands expire from minute 10; native ones complete by the
                    # hundred and one of them expired long ago.
                    series(
                        "commands",
                        transitions,
                        "0x10 1 2 2x20",
                        protocol="vda5050",
                        state="expired",
                    ),
                    series(
                        "commands", transitions, "0+100x40", protocol="native", state="completed"
                    ),
                    series("commands", transitions, "1x40", protocol="native", state="expired"),
                    # Sparkplug writes fail from minute 10.
                    series(
                        "commands", transitions, "0x10 3x30", protocol="sparkplug", state="failed"
                    ),
                    series(
                        "commands", transitions, "0+5x40", protocol="sparkplug", state="completed"
                    ),
                    # Half of the webhook attempts fail; e-mail fails one attempt in eleven.
                    series("notify", deliveries, "0+6x40", channel="webhook", outcome="failed"),
                    series("notify", deliveries, "0+6x40", channel="webhook", outcome="sent"),
                    series("notify", deliveries, "0+1x40", channel="email", outcome="failed"),
                    series("notify", deliveries, "0+10x40", channel="email", outcome="sent"),
                    # The notifier cannot be scraped from minute 1.
                    series("notify", "up", "1 0x40", pod="n-0"),
                    series("commands", "up", "1x40", pod="c-0"),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "1m",
                        "alertname": "Factory5gCommanderDisconnected",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "Factory5gCommanderDisconnected",
                        "exp_alerts": [fired("Factory5gCommanderDisconnected", pod="c-0")],
                    },
                    {"eval_time": "9m", "alertname": "Factory5gCommandsExpiring", "exp_alerts": []},
                    {
                        "eval_time": "12m",
                        "alertname": "Factory5gCommandsExpiring",
                        "exp_alerts": [fired("Factory5gCommandsExpiring", protocol="vda5050")],
                    },
                    {
                        "eval_time": "25m",
                        "alertname": "Factory5gCommandsExpiring",
                        "exp_alerts": [],
                    },
                    {"eval_time": "9m", "alertname": "Factory5gCommandsFailing", "exp_alerts": []},
                    {
                        "eval_time": "12m",
                        "alertname": "Factory5gCommandsFailing",
                        "exp_alerts": [fired("Factory5gCommandsFailing", protocol="sparkplug")],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "Factory5gNotificationDeliveriesFailing",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "35m",
                        "alertname": "Factory5gNotificationDeliveriesFailing",
                        "exp_alerts": [
                            fired("Factory5gNotificationDeliveriesFailing", channel="webhook")
                        ],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "Factory5gTargetDown",
                        "exp_alerts": [
                            fired(
                                "Factory5gTargetDown",
                                namespace=NAMESPACE,
                                job=f"{fullname()}-notify",
                                pod="n-0",
                            )
                        ],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "alerts_test.yaml"
    test_file.write_text(yaml.safe_dump(test))
    _run_promtool("test", "rules", str(test_file))


def test_notes_explain_access(default: Rendered, chart: helm.Chart) -> None:
    assert f"svc/{FULLNAME}-api" in default.notes
    assert "bootstrap" in default.notes.lower()
    assert "WARNING" not in default.notes
    insecure = render(chart, {"security": {"insecure": True}}, credentials=False)
    assert "WARNING: security.insecure is set" in insecure.notes


# --- image and packaging ---------------------------------------------------------------------


def test_dockerfile_builds_one_non_root_image_for_every_service() -> None:
    text = (REPO_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert len(re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS \w+$", text, re.M)) == 2
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["factory5g"\]$', text, re.M)
    # A wheel, not an editable install: the runtime stage takes the venv and no source tree.
    assert re.search(r"^RUN pip wheel --no-deps --wheel-dir /wheels \. ", text, re.M)
    assert "pip install --no-deps /wheels/factory5g-*.whl" in text
    assert not re.search(r"pip install[^\n]* -e ", text)
    assert "COPY --from=build /opt/venv /opt/venv" in text
    assert "COPY --from=build /app" not in text
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert {"*", "!pyproject.toml", "!services/"} <= set(ignore)
    assert not {"!f5gdev/", "!loadtests/", "!schemas/"} & set(ignore)


def test_chart_user_matches_the_image_user(chart: helm.Chart) -> None:
    values = chart.values
    assert values["podSecurityContext"]["runAsUser"] == UID
    assert values["securityContext"]["runAsUser"] == UID


def test_dev_extra_has_the_chart_test_tools() -> None:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    dev = text.split("dev = [", 1)[1].split("]", 1)[0]
    assert '"helm-python-sdk' in dev
    assert '"kubernetes-validate' in dev


def test_kube_version_is_shipped_and_allowed(chart: helm.Chart) -> None:
    """The schemas exist for the version the tests validate against, and the chart's
    kubeVersion constraint admits it."""
    from kubernetes_validate import utils  # type: ignore[import-untyped]
    from packaging.version import Version

    assert Version(KUBE_VERSION) <= Version(utils.latest_version())
    assert KUBE_VERSION.rsplit(".", 1)[0] in {v.rsplit(".", 1)[0] for v in utils.all_versions()}
    minimum = re.fullmatch(r">=(\d+\.\d+)\.\d+-0", chart.metadata["kubeVersion"])
    assert minimum, chart.metadata["kubeVersion"]
    assert Version(minimum[1]) <= Version(KUBE_VERSION)
