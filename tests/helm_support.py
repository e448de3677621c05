"""Offline rendering, linting and validation of the factory5g Helm chart.

Rendering and linting use the Helm v4 engine that `helm-python-sdk` ships as a shared library,
so no `helm` binary, cluster or network is needed. Rendered objects of built-in kinds are
validated against the Kubernetes OpenAPI schemas that `kubernetes-validate` ships; the
Prometheus Operator kinds have no schema there and are checked structurally.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "factory5g"
EXAMPLES_DIR = REPO_ROOT / "deploy" / "helm" / "examples"
METRICS_FILE = CHART_DIR / "metrics.txt"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"

# Newest Kubernetes minor the schemas are pinned to; the chart needs >= 1.28.
KUBE_VERSION = "1.35.0"
RELEASE = "plant"
NAMESPACE = "factory"

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "Pod")
SERVICE_COMPONENTS = ("ingest", "rules", "api")
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
)

Obj = dict[str, Any]

# Services with a database login user and a broker account of their own.
ROLE_COMPONENTS = ("ingest", "rules", "api", "simulator", "commands")

# What a secure install must supply (the chart refuses to render without it unless
# security.insecure is set): the owner's password, a login user per service, a broker
# account per service and TLS. `render` adds it unless told not to.
CREDENTIALS: Obj = {
    "database": {
        "url": "postgresql://factory5g:owner-pw@timescaledb:5432/factory5g",
        "serviceUrls": {
            c: f"postgresql://f5g_{c}:pw-{c}@timescaledb:5432/factory5g" for c in ROLE_COMPONENTS
        },
    },
    "mqtt": {
        "port": 8883,
        "tls": {"enabled": True},
        "serviceCredentials": {c: {"username": c, "password": f"pw-{c}"} for c in ROLE_COMPONENTS},
    },
}


@dataclass(frozen=True)
class Manifest:
    """One rendered object and the template it came from."""

    template: str
    obj: Obj

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.obj["metadata"].get("labels") or {}
        return labels

    @property
    def annotations(self) -> dict[str, str]:
        annotations: dict[str, str] = self.obj["metadata"].get("annotations") or {}
        return annotations

    def pod_template(self) -> tuple[Obj, Obj]:
        """(metadata, spec) of the pod this workload runs."""
        if self.kind == "Pod":
            return self.obj["metadata"], self.obj["spec"]
        template = self.obj["spec"]["template"]
        return template["metadata"], template["spec"]


@dataclass
class Rendered:
    manifests: list[Manifest]
    notes: str
    values: Obj = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m.kind == kind]

    def get(self, kind: str, name: str) -> Manifest:
        found = [m for m in self.manifests if m.kind == kind and m.name == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def workloads(self) -> list[Manifest]:
        return [m for m in self.manifests if m.kind in WORKLOAD_KINDS]

    def component(self, kind: str, component: str) -> Manifest:
        return self.get(kind, f"{fullname()}-{component}")

    def workload(self, component: str) -> Manifest:
        """The Deployment, StatefulSet or Job of a component, whichever kind it is."""
        name = f"{fullname()}-{component}"
        (found,) = [m for m in self.workloads() if m.name == name]
        return found

    def config_env(self) -> dict[str, str]:
        data: dict[str, str] = self.get("ConfigMap", f"{fullname()}-config").obj["data"]
        return data


def fullname(release: str = RELEASE) -> str:
    return release if "factory5g" in release else f"{release}-factory5g"


def load_chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


def with_credentials(values: Obj | None = None) -> Obj:
    """`values` on top of the credentials a secure install needs (existing Secrets and the
    like in `values` win: with them the chart ignores the inline ones)."""
    merged = deep_merge(copy.deepcopy(CREDENTIALS), values or {})
    if merged["database"].get("existingSecret"):
        merged["database"].pop("serviceUrls")
    return merged


def render(
    chart: helm.Chart,
    values: Obj | None = None,
    *,
    release: str = RELEASE,
    credentials: bool = True,
) -> Rendered:
    """Render like `helm install --dry-run`: schema-checked, hooks and test pods included.

    With `credentials` the values sit on top of CREDENTIALS, as a secure install's would.
    """
    values = with_credentials(values) if credentials else values
    files = chart.render(values or {}, name=release, namespace=NAMESPACE, is_install=True)
    manifests: list[Manifest] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append(Manifest(path, doc))
    return Rendered(manifests, notes, values or {})


def lint_problems(values: Obj | None = None) -> list[str]:
    """Lint findings of severity warning or error, plus hard errors, as text (for complete
    values: the chart refuses to render without credentials)."""
    report = helm.lint(CHART_DIR, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [
        f"{m['path']}: {m['error']}" for m in report.get("messages") or [] if m["severity"] >= 2
    ]
    problems += [str(e) for e in report.get("errors") or []]
    return problems


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.yaml"))


def read_values(path: Path) -> Obj:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path} is not a mapping"
    return loaded


def metric_names() -> list[str]:
    return [line.strip() for line in METRICS_FILE.read_text().splitlines() if line.strip()]


def undocumented_values(text: str) -> list[str]:
    """Dotted paths of the keys in a values file without a comment line right above them.

    A comment starting with `# --` on a key whose value is a block (helm-docs style)
    documents the whole block, e.g. a securityContext or resources default.
    """
    problems: list[str] = []
    path: list[tuple[int, str]] = []
    comment_indent: int | None = None
    block_comment = False
    covered: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            comment_indent, block_comment = None, False
            continue
        if covered is not None and indent > covered:
            continue
        covered = None
        if stripped.startswith("#"):
            if comment_indent != indent:
                block_comment = False
            comment_indent = indent
            block_comment = block_comment or stripped.startswith("# --")
            continue
        match = re.match(r"([A-Za-z0-9_]+):(.*)$", stripped)
        if match:
            path = [(i, k) for i, k in path if i < indent] + [(indent, match[1])]
            if comment_indent != indent:
                problems.append(".".join(k for _, k in path))
            elif block_comment and not match[2].strip():
                covered = indent
        comment_indent, block_comment = None, False
    return problems


def validate_manifest(manifest: Manifest) -> None:
    """Schema-validate a built-in kind (strict: no unknown fields); check CRD kinds by shape."""
    obj = manifest.obj
    checks = {
        "ServiceMonitor": check_service_monitor,
        "PrometheusRule": check_prometheus_rule,
    }
    if obj["kind"] in checks:
        assert obj["apiVersion"] == "monitoring.coreos.com/v1", manifest.template
        checks[obj["kind"]](obj)
        return
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        raise AssertionError(
            f"{manifest.template}: {obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}"
        ) from None


_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _check_metadata(obj: Obj) -> None:
    meta = obj["metadata"]
    assert isinstance(meta["name"], str), "metadata.name"
    assert meta["name"], "metadata.name"
    for key, value in (meta.get("labels") or {}).items():
        assert isinstance(value, str), key
        assert len(value) <= 63, key
        assert _LABEL_VALUE.match(value), key
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}, sorted(obj)


def check_service_monitor(obj: Obj) -> None:
    """The fields of monitoring.coreos.com/v1 ServiceMonitor the chart uses, by shape."""
    _check_metadata(obj)
    spec = obj["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}, sorted(spec)
    assert isinstance(spec["selector"]["matchLabels"], dict)
    assert spec["selector"]["matchLabels"]
    names = spec.get("namespaceSelector", {}).get("matchNames", [])
    assert all(isinstance(n, str) and n for n in names)
    assert spec["endpoints"], "at least one endpoint"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}, sorted(endpoint)
        assert isinstance(endpoint["port"], str)
        assert endpoint["port"]
        assert str(endpoint["path"]).startswith("/")
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint:
                assert _DURATION.match(str(endpoint[key])), (key, endpoint[key])


def check_prometheus_rule(obj: Obj) -> None:
    """The fields of monitoring.coreos.com/v1 PrometheusRule, by shape."""
    _check_metadata(obj)
    groups = obj["spec"]["groups"]
    assert set(obj["spec"]) == {"groups"}
    assert groups, "at least one group"
    for group in groups:
        assert set(group) <= {"name", "interval", "rules"}, sorted(group)
        assert isinstance(group["name"], str)
        assert group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str)
            assert rule["expr"].strip()
            assert _balanced(rule["expr"]), rule["expr"]
            if "for" in rule:
                assert _DURATION.match(str(rule["for"])), rule["for"]
            for key in ("labels", "annotations"):
                mapping: Mapping[str, Any] = rule.get(key) or {}
                assert all(isinstance(v, str) for v in mapping.values()), (key, mapping)


def _balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_string = False
    for char in expr:
        if char == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not in_string


def containers(pod_spec: Obj) -> Iterator[Obj]:
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec["containers"]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env") or []}


def secret_refs(pod_spec: Obj) -> list[tuple[str, str]]:
    """(secret name, key) of every secretKeyRef and every secret volume ('' as key)."""
    refs: list[tuple[str, str]] = []
    for container in containers(pod_spec):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.append((ref["name"], ref["key"]))
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                refs.append((source["secretRef"]["name"], ""))
    for volume in pod_spec.get("volumes") or []:
        if "secret" in volume:
            refs.append((volume["secret"]["secretName"], ""))
    return refs


def deep_merge(base: Obj, override: Mapping[str, Any]) -> Obj:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def promtool() -> str:
    """Path of promtool; a missing one fails the test (CI installs it, never a skip)."""
    path = shutil.which("promtool")
    assert path, "promtool is missing: scripts/install-stack.sh installs it (`make servers`)"
    return path
