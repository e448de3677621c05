"""The rule file: YAML in, validated and layered rule settings out.

Operators edit this file by hand, so every error names the file, the line and the key
(`rules.yaml:14:7: defaults.vision.defect_rate.raise: expected a number, got 'high'`). It is
read from YAML *nodes*, not plain objects, because only nodes remember where they were.

Layers, later ones winning key by key: a rule type's built-in defaults, `defaults.<kind>`,
`projects.<p>.kinds.<kind>`, `projects.<p>.devices.<device>`. Every combination the file
spells out is compiled at load time, so a contradiction (a clear threshold on the wrong side
of the raise threshold, say) fails at start, not when the first device shows up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from services.core.contracts import is_valid_id
from services.rules.builtin import BUILTIN, SEVERITIES, Param, Rule, RuleConfig
from services.rules.window import WindowSpec

DEFAULT_RULES_NAME = "default_rules.yaml"
COMMON_KEYS = (
    "type",
    "enabled",
    "severity",
    "raise",
    "clear",
    "for",
    "clear_for",
    "quiet_clear",
    "escalate",
    "description",
    "name",
)
# A rule's own name per language (`name: {en: ..., zh: ...}`), at most this long.
NAME_LANGUAGES = ("en", "zh")
NAME_MAX = 120
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class RulesConfigError(Exception):
    """A rule file problem; the message starts with `file:line:column: key.path:`."""

    def __init__(self, source: str, mark: Mark | None, key: str, problem: str) -> None:
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")
        self.source = source
        self.line = mark.line + 1 if mark else None
        self.key = key
        self.problem = problem


# A layer of one rule's settings: key -> (value, where it was written).
Layer = dict[str, tuple[Any, Mark]]


@dataclass
class ProjectRules:
    kinds: dict[str, dict[str, Layer]] = field(default_factory=dict)
    devices: dict[str, dict[str, Layer]] = field(default_factory=dict)


@dataclass
class RuleSet:
    """A validated rule file; `rules_for` compiles (and caches) a device's rules."""

    source: str
    update_interval_s: float
    quiet_clear_s: float
    defaults: dict[str, dict[str, Layer]]
    projects: dict[str, ProjectRules]
    lines: dict[str, dict[str, str]]
    # Where `alarms.quiet_clear` was written, if it was (the effective view names it).
    quiet_clear_mark: Mark | None = None
    _cache: dict[tuple[str, str, str | None], list[Rule]] = field(default_factory=dict)

    def line_of(self, project: str, device: str) -> str:
        """A station's line; without a `lines` entry every station of a project is one line."""
        return self.lines.get(project, {}).get(device, "")

    def rules_for(self, project: str, kind: str, device: str) -> list[Rule]:
        proj = self.projects.get(project)
        dev_key = device if proj is not None and device in proj.devices else None
        key = (project, kind, dev_key)
        rules = self._cache.get(key)
        if rules is None:
            rules = self._compile(project, kind, dev_key)
            self._cache[key] = rules
        return rules

    def _layers(self, project: str, kind: str, device: str | None) -> dict[str, list[Layer]]:
        return {
            name: [lay for _, lay in labelled]
            for name, labelled in self._labelled(project, kind, device).items()
        }

    def _labelled(
        self, project: str, kind: str, device: str | None
    ) -> dict[str, list[tuple[str, Layer]]]:
        """Each rule's layers, earliest first, with the name of the section each came from."""
        merged: dict[str, list[tuple[str, Layer]]] = {
            n: [(f"defaults.{kind}", lay)] for n, lay in self.defaults.get(kind, {}).items()
        }
        proj = self.projects.get(project)
        if proj is not None:
            for name, lay in proj.kinds.get(kind, {}).items():
                merged.setdefault(name, []).append((f"projects.{project}.kinds.{kind}", lay))
            if device is not None:
                label = f"projects.{project}.devices.{device}"
                for name, lay in proj.devices.get(device, {}).items():
                    merged.setdefault(name, []).append((label, lay))
        return merged

    def effective(
        self, project: str, kinds: Sequence[str], device: str | None
    ) -> list[EffectiveRule]:
        """Every rule a device of `project` taking part in `kinds` (its profiles, or its
        topic's kind) gets, each setting with the layer that decided it and where that layer
        wrote it. The first kind naming a rule brings it in, as in `Engine.rules_of`.

        Why: an operator asking "why did this AGV raise at 30 %?" needs the winning layer
        and line, not the merged number alone; the rules service answers the API with this.
        """
        out: dict[str, EffectiveRule] = {}
        for kind in kinds:
            for name, labelled in self._labelled(project, kind, device).items():
                if name not in out:
                    out[name] = effective_rule(self, name, kind, labelled)
        return list(out.values())

    def _compile(self, project: str, kind: str, device: str | None) -> list[Rule]:
        out: list[Rule] = []
        for name, layers in self._layers(project, kind, device).items():
            rule = compile_rule(self.source, name, layers, self.quiet_clear_s)
            if rule is not None:
                out.append(rule)
        return out

    def check_all(self) -> None:
        """Compile every combination the file names, so contradictions fail at load."""
        for kind in self.defaults:
            self._compile("", kind, None)
        for project, proj in self.projects.items():
            kinds = set(self.defaults) | set(proj.kinds)
            for kind in kinds:
                self._compile(project, kind, None)
                for device in proj.devices:
                    self._compile(project, kind, device)


# --------------------------------------------------------------------------- effective view


BUILTIN_LAYER = "builtin"


@dataclass(frozen=True)
class EffectiveValue:
    """One setting of one rule: its value, the layer that decided it (`builtin`,
    `alarms.quiet_clear`, `defaults.<kind>`, `projects.<p>.kinds.<kind>` or
    `projects.<p>.devices.<d>`) and where that layer wrote it (`file:line:column`,
    None for a built-in default)."""

    key: str
    value: Any
    layer: str
    source: str | None


@dataclass(frozen=True)
class EffectiveRule:
    name: str
    type: str
    kind: str  # the profile or topic kind that brought the rule in
    enabled: bool
    settings: list[EffectiveValue]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.name,
            "type": self.type,
            "kind": self.kind,
            "enabled": self.enabled,
            "settings": [
                {"key": v.key, "value": v.value, "layer": v.layer, "source": v.source}
                for v in self.settings
            ],
        }


def _plain_value(value: Any) -> Any:
    """A setting as JSON: a window is `{"count": n}` or `{"seconds": s}`."""
    if isinstance(value, WindowSpec):
        return {"count": value.count} if value.count is not None else {"seconds": value.seconds}
    return value


def effective_rule(
    ruleset: RuleSet, name: str, kind: str, labelled: list[tuple[str, Layer]]
) -> EffectiveRule:
    """One rule's settings key by key, resolved exactly as `compile_rule` resolves them."""
    source = ruleset.source

    def where(mark: Mark | None) -> str | None:
        return None if mark is None else f"{source}:{mark.line + 1}:{mark.column + 1}"

    def winner(key: str) -> EffectiveValue | None:
        for label, lay in reversed(labelled):
            if key in lay:
                value, mark = lay[key]
                return EffectiveValue(key, value, label, where(mark))
        return None

    def setting(key: str, default: Any) -> EffectiveValue:
        return winner(key) or EffectiveValue(key, default, BUILTIN_LAYER, None)

    type_set = winner("type")
    type_name = str(type_set.value) if type_set is not None else name
    cls = BUILTIN[type_name]  # the parser accepted only built-in types
    d = cls.defaults
    enabled = setting("enabled", True)
    severity = setting("severity", d["severity"])
    raise_at = setting("raise", d["raise"])
    clear = winner("clear")
    if clear is None:
        # Without a clear threshold the rule clears where it raises (compile_rule).
        clear = (
            EffectiveValue("clear", d["clear"], BUILTIN_LAYER, None)
            if d["clear"] is not None
            else EffectiveValue("clear", raise_at.value, raise_at.layer, raise_at.source)
        )
    quiet = winner("quiet_clear") or EffectiveValue(
        "quiet_clear",
        ruleset.quiet_clear_s,
        BUILTIN_LAYER if ruleset.quiet_clear_mark is None else "alarms.quiet_clear",
        where(ruleset.quiet_clear_mark),
    )
    esc_default: dict[str, Any] | None = dict(d["escalate"]) if "escalate" in d else None
    escalate = winner("escalate")
    if escalate is None:
        escalate = EffectiveValue("escalate", esc_default, BUILTIN_LAYER, None)
    elif escalate.value is not None:
        merged = {**(esc_default or {}), **escalate.value}
        escalate = EffectiveValue("escalate", merged, escalate.layer, escalate.source)
    esc = escalate.value
    if esc is not None and esc.get("at") is not None and not esc.get("severity"):
        # Without a severity an escalation goes one step up (compile_rule).
        step = SEVERITIES[min(SEVERITIES.index(severity.value) + 1, 3)]
        escalate = EffectiveValue(
            "escalate", {**esc, "severity": step}, escalate.layer, escalate.source
        )
    settings = [
        type_set or EffectiveValue("type", type_name, BUILTIN_LAYER, None),
        enabled,
        severity,
        raise_at,
        clear,
        setting("for", d.get("for", 0.0)),
        setting("clear_for", d.get("clear_for", 0.0)),
        quiet,
        escalate,
    ]
    description = winner("description")
    if description is not None:
        settings.append(description)
    own_name = winner("name")
    if own_name is not None:
        settings.append(own_name)
    for key, spec in cls.params_spec.items():
        param = setting(key, spec.default)
        if spec.kind == "window" and not isinstance(param.value, WindowSpec | None):
            count = isinstance(param.value, int)
            spec_ = WindowSpec(count=param.value) if count else WindowSpec(seconds=param.value)
            param = EffectiveValue(key, spec_, param.layer, param.source)
        settings.append(param)
    settings = [EffectiveValue(v.key, _plain_value(v.value), v.layer, v.source) for v in settings]
    return EffectiveRule(name, type_name, kind, bool(enabled.value), settings)


# --------------------------------------------------------------------------- compiling


def _value(layers: list[Layer], key: str) -> tuple[Any, Mark | None, bool]:
    """The winning value of a key across layers, where it was set, and whether it was set."""
    for lay in reversed(layers):
        if key in lay:
            value, mark = lay[key]
            return value, mark, True
    return None, None, False


def compile_rule(source: str, name: str, layers: list[Layer], quiet_clear_s: float) -> Rule | None:
    type_name, type_mark, _ = _value(layers, "type")
    type_name = type_name or name
    cls = BUILTIN.get(type_name)
    if cls is None:
        raise RulesConfigError(
            source,
            type_mark or _first_mark(layers),
            name,
            f"unknown rule type {type_name!r}; built-in types: {', '.join(sorted(BUILTIN))}",
        )
    enabled, _, set_ = _value(layers, "enabled")
    if set_ and not enabled:
        return None
    names, _, _ = _value(layers, "name")

    def pick(key: str, default: Any) -> tuple[Any, Mark | None]:
        value, mark, was_set = _value(layers, key)
        return (value, mark) if was_set else (default, None)

    d = cls.defaults
    severity, _ = pick("severity", d["severity"])
    raise_at, raise_mark = pick("raise", d["raise"])
    clear_at, clear_mark = pick("clear", d["clear"])
    for_s, _ = pick("for", d.get("for", 0.0))
    clear_for_s, _ = pick("clear_for", d.get("clear_for", 0.0))
    quiet, _ = pick("quiet_clear", quiet_clear_s)
    esc: dict[str, Any] | None = dict(d["escalate"]) if "escalate" in d else None
    esc_value, esc_mark, esc_set = _value(layers, "escalate")
    if esc_set:
        esc = None if esc_value is None else {**(esc or {}), **esc_value}
    esc_at = None if esc is None else esc.get("at")
    esc_sev = None
    if esc_at is not None:
        assert esc is not None
        esc_sev = esc.get("severity") or SEVERITIES[min(SEVERITIES.index(severity) + 1, 3)]
    where = raise_mark or clear_mark or _first_mark(layers)
    # Rule types without a default threshold (threshold_above/below) need one written.
    if raise_at is None:
        raise RulesConfigError(source, where, f"{name}.raise", "is required for this rule type")
    if clear_at is None:
        clear_at = raise_at
    for key, spec in cls.params_spec.items():
        if spec.default is None and spec.kind == "str" and _value(layers, key)[0] is None:
            raise RulesConfigError(source, where, f"{name}.{key}", "is required for this rule type")
    if cls.direction == "above":
        if clear_at > raise_at:
            raise RulesConfigError(
                source,
                clear_mark or where,
                f"{name}.clear",
                f"clear ({clear_at:g}) must not exceed raise ({raise_at:g}) for a rule that "
                "raises above its threshold",
            )
        if esc_at is not None and esc_at < raise_at:
            raise RulesConfigError(
                source, esc_mark or where, f"{name}.escalate.at", "must not be below raise"
            )
    else:
        if clear_at < raise_at:
            raise RulesConfigError(
                source,
                clear_mark or where,
                f"{name}.clear",
                f"clear ({clear_at:g}) must not be below raise ({raise_at:g}) for a rule that "
                "raises below its threshold",
            )
        if esc_at is not None and esc_at > raise_at:
            raise RulesConfigError(
                source, esc_mark or where, f"{name}.escalate.at", "must not be above raise"
            )
    if esc_sev is not None and SEVERITIES.index(esc_sev) < SEVERITIES.index(severity):
        raise RulesConfigError(
            source, esc_mark or where, f"{name}.escalate.severity", "is lower than severity"
        )
    params = {}
    for key, spec in cls.params_spec.items():
        value, _ = pick(key, spec.default)
        if spec.kind == "window" and not isinstance(value, WindowSpec):
            value = WindowSpec(count=value) if isinstance(value, int) else WindowSpec(seconds=value)
        params[key] = value
    cfg = RuleConfig(
        name=name,
        type=type_name,
        severity=severity,
        raise_at=float(raise_at),
        clear_at=float(clear_at),
        for_s=float(for_s),
        clear_for_s=float(clear_for_s),
        quiet_clear_s=float(quiet),
        escalate_at=None if esc_at is None else float(esc_at),
        escalate_severity=esc_sev,
        params=params,
        names=names,
    )
    return cls(cfg)


def _first_mark(layers: list[Layer]) -> Mark | None:
    for lay in layers:
        for _, mark in lay.values():
            return mark
    return None


# --------------------------------------------------------------------------- reading


class _Reader:
    """Walks YAML nodes, converting values and raising errors that point into the file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._loader = yaml.SafeLoader("")

    def fail(self, node: Node, path: str, problem: str) -> RulesConfigError:
        return RulesConfigError(self.source, node.start_mark, path, problem)

    def mapping(self, node: Node, path: str) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, path, f"expected a mapping, got {_shape(node)}")
        out: dict[str, tuple[Node, Node]] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode):
                raise self.fail(knode, path, "keys must be plain names")
            key = str(knode.value)
            if key in out:
                raise self.fail(knode, _join(path, key), "duplicate key")
            out[key] = (knode, vnode)
        return out

    def plain(self, node: Node) -> Any:
        return self._loader.construct_object(node, deep=True)  # type: ignore[no-untyped-call]

    def number(self, node: Node, path: str) -> float:
        v = self.plain(node) if isinstance(node, ScalarNode) else node
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(node, path, f"expected a number, got {_shown(v)}")
        return float(v)

    def integer(self, node: Node, path: str, minimum: int = 1) -> int:
        v = self.plain(node) if isinstance(node, ScalarNode) else node
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(node, path, f"expected a whole number >= {minimum}, got {_shown(v)}")
        return v

    def duration(self, node: Node, path: str) -> float:
        v = self.plain(node) if isinstance(node, ScalarNode) else node
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
            return float(v)
        if isinstance(v, str):
            m = _DURATION_RE.match(v)
            if m:
                return float(m.group(1)) * _UNIT_S[m.group(2)]
        raise self.fail(
            node, path, f"expected a duration like 30s, 5m, 250ms or seconds, got {_shown(v)}"
        )

    def window(self, node: Node, path: str) -> WindowSpec:
        v = self.plain(node) if isinstance(node, ScalarNode) else node
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise self.fail(node, path, "a count window needs at least 1 sample")
            return WindowSpec(count=v)
        seconds = self.duration(node, path)
        if seconds <= 0:
            raise self.fail(node, path, "a time window must be longer than 0 s")
        return WindowSpec(seconds=seconds)

    def boolean(self, node: Node, path: str) -> bool:
        v = self.plain(node)
        if not isinstance(v, bool):
            raise self.fail(node, path, f"expected true or false, got {_shown(v)}")
        return v

    def text(self, node: Node, path: str) -> str:
        v = self.plain(node)
        if not isinstance(v, str) or not v:
            raise self.fail(node, path, f"expected text, got {_shown(v)}")
        return v

    def ident(self, node: Node, path: str, what: str) -> str:
        v = self.plain(node)
        if not isinstance(v, str) or not is_valid_id(v):
            raise self.fail(
                node, path, f"{what} {_shown(v)} must be 1-64 of A-Z a-z 0-9 _ . - (topic-safe)"
            )
        return v

    def severity(self, node: Node, path: str) -> str:
        v = self.plain(node)
        if v not in SEVERITIES:
            raise self.fail(node, path, f"expected one of {', '.join(SEVERITIES)}, got {_shown(v)}")
        return str(v)

    def strlist(self, node: Node, path: str) -> list[str]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, path, f"expected a list of text, got {_shape(node)}")
        return [self.text(item, f"{path}[{i}]") for i, item in enumerate(node.value)]

    def floatmap(self, node: Node, path: str) -> dict[str, float]:
        return {k: self.number(v, _join(path, k)) for k, (_, v) in self.mapping(node, path).items()}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _shape(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    return "a list" if isinstance(node, SequenceNode) else "a single value"


def _shown(v: Any) -> str:
    return (
        "nothing" if v is None else repr(v) if not isinstance(v, dict | list) else type(v).__name__
    )


def _read_param(r: _Reader, spec: Param, node: Node, path: str) -> Any:
    if spec.default is None and isinstance(node, ScalarNode) and r.plain(node) is None:
        return None
    kind = spec.kind
    if kind == "float":
        return r.number(node, path)
    if kind == "int":
        return r.integer(node, path)
    if kind == "duration":
        return r.duration(node, path)
    if kind == "window":
        return r.window(node, path)
    if kind == "bool":
        return r.boolean(node, path)
    if kind == "strlist":
        return r.strlist(node, path)
    if kind == "floatmap":
        return r.floatmap(node, path)
    return r.text(node, path)


def _read_rule(
    r: _Reader, name: str, node: Node, path: str, base_type: str | None
) -> tuple[Layer, str]:
    """One rule's settings in one layer; `base_type` is what earlier layers made it."""
    items = r.mapping(node, path) if not _is_null(r, node) else {}
    layer: Layer = {}
    type_name = base_type or name
    if "type" in items:
        knode, vnode = items["type"]
        type_name = r.text(vnode, _join(path, "type"))
        if type_name not in BUILTIN:
            raise r.fail(
                vnode,
                _join(path, "type"),
                f"unknown rule type {type_name!r}; built-in types: {', '.join(sorted(BUILTIN))}",
            )
        layer["type"] = (type_name, vnode.start_mark)
    cls = BUILTIN.get(type_name)
    if cls is None:
        raise r.fail(
            node,
            path,
            f"{name!r} is not a built-in rule; add `type:` naming one of "
            f"{', '.join(sorted(BUILTIN))}",
        )
    for key, (knode, vnode) in items.items():
        kpath = _join(path, key)
        mark = vnode.start_mark
        if key == "type":
            continue
        if key == "enabled":
            layer[key] = (r.boolean(vnode, kpath), mark)
        elif key == "severity":
            layer[key] = (r.severity(vnode, kpath), mark)
        elif key in ("raise", "clear"):
            layer[key] = (r.number(vnode, kpath), mark)
        elif key in ("for", "clear_for", "quiet_clear"):
            layer[key] = (r.duration(vnode, kpath), mark)
        elif key == "description":
            layer[key] = (r.text(vnode, kpath), mark)
        elif key == "name":
            layer[key] = (_read_name(r, vnode, kpath), mark)
        elif key == "escalate":
            layer[key] = (_read_escalate(r, vnode, kpath), mark)
        elif key in cls.params_spec:
            layer[key] = (_read_param(r, cls.params_spec[key], vnode, kpath), mark)
        else:
            allowed = sorted(set(COMMON_KEYS) | set(cls.params_spec))
            raise r.fail(
                knode,
                kpath,
                f"unknown setting for a {type_name} rule; allowed: {', '.join(allowed)}",
            )
    return layer, type_name


def _read_name(r: _Reader, node: Node, path: str) -> dict[str, str]:
    """`name: {en: ..., zh: ...}`: what readers see instead of the built-in type's name;
    one language is enough (the other falls back to it)."""
    if not isinstance(node, MappingNode):
        raise r.fail(node, path, "expected a mapping of language to name, e.g. {en: ..., zh: ...}")
    out: dict[str, str] = {}
    for key, (knode, vnode) in r.mapping(node, path).items():
        if key not in NAME_LANGUAGES:
            raise r.fail(
                knode, _join(path, key), f"unknown language; allowed: {', '.join(NAME_LANGUAGES)}"
            )
        text = r.text(vnode, _join(path, key))
        if len(text) > NAME_MAX or not text.isprintable():
            raise r.fail(
                vnode,
                _join(path, key),
                f"must be at most {NAME_MAX} printable characters on one line",
            )
        out[key] = text
    if not out:
        raise r.fail(node, path, f"name at least one of {', '.join(NAME_LANGUAGES)}")
    return out


def _read_escalate(r: _Reader, node: Node, path: str) -> dict[str, Any] | None:
    if _is_null(r, node):
        return None
    out: dict[str, Any] = {}
    for key, (knode, vnode) in r.mapping(node, path).items():
        if key == "at":
            out["at"] = r.number(vnode, _join(path, key))
        elif key == "severity":
            out["severity"] = r.severity(vnode, _join(path, key))
        else:
            raise r.fail(knode, _join(path, key), "unknown setting; allowed: at, severity")
    return out


def _is_null(r: _Reader, node: Node) -> bool:
    return isinstance(node, ScalarNode) and r.plain(node) is None


def _read_rules_map(
    r: _Reader, node: Node, path: str, types: dict[str, str] | None
) -> tuple[dict[str, Layer], dict[str, str]]:
    """rule name -> settings; `types` maps names known from earlier layers to their type."""
    rules: dict[str, Layer] = {}
    found: dict[str, str] = {}
    for name, (knode, vnode) in r.mapping(node, path).items():
        r.ident(knode, _join(path, name), "rule name")
        base = None if types is None else types.get(name)
        if types is not None and base is None and name not in BUILTIN:
            items = r.mapping(vnode, _join(path, name)) if not _is_null(r, vnode) else {}
            if "type" not in items:
                raise r.fail(
                    knode,
                    _join(path, name),
                    "overrides a rule no default defines; add `type:` to define it here",
                )
        layer, type_name = _read_rule(r, name, vnode, _join(path, name), base)
        rules[name] = layer
        found[name] = type_name
    return rules, found


def parse_rules(text: str, source: str) -> RuleSet:
    """Validate a rule file's text; raise `RulesConfigError` naming file, line and key."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise RulesConfigError(source, mark, "", f"not valid YAML: {exc.problem}") from None
    if root is None:
        raise RulesConfigError(source, None, "", "the file is empty")
    r = _Reader(source)
    top = r.mapping(root, "")
    allowed_top = ("version", "alarms", "lines", "defaults", "projects")
    for key, (knode, _) in top.items():
        if key not in allowed_top:
            raise r.fail(knode, key, f"unknown section; allowed: {', '.join(allowed_top)}")
    if "version" not in top:
        raise r.fail(root, "version", "missing; write `version: 1` at the top")
    vnode = top["version"][1]
    if r.plain(vnode) != 1:
        raise r.fail(vnode, "version", f"unsupported version {_shown(r.plain(vnode))}; use 1")

    update_interval, quiet = 10.0, 1800.0
    quiet_mark: Mark | None = None
    if "alarms" in top:
        for key, (knode, v) in r.mapping(top["alarms"][1], "alarms").items():
            if key == "update_interval":
                update_interval = r.duration(v, "alarms.update_interval")
            elif key == "quiet_clear":
                quiet = r.duration(v, "alarms.quiet_clear")
                quiet_mark = v.start_mark
            else:
                raise r.fail(
                    knode, f"alarms.{key}", "unknown setting; allowed: update_interval, quiet_clear"
                )

    lines: dict[str, dict[str, str]] = {}
    if "lines" in top:
        for project, (pk, pnode) in r.mapping(top["lines"][1], "lines").items():
            r.ident(pk, f"lines.{project}", "project id")
            members: dict[str, str] = {}
            for line, (_lk, lnode) in r.mapping(pnode, f"lines.{project}").items():
                lpath = f"lines.{project}.{line}"
                for i, dnode in enumerate(r.strlist(lnode, lpath) and lnode.value):
                    device = r.ident(dnode, f"{lpath}[{i}]", "device id")
                    if device in members:
                        raise r.fail(dnode, f"{lpath}[{i}]", f"{device} is already in a line")
                    members[device] = line
            lines[project] = members

    defaults: dict[str, dict[str, Layer]] = {}
    types_by_kind: dict[str, dict[str, str]] = {}
    all_types: dict[str, str] = {}
    if "defaults" in top:
        for kind, (kk, knode) in r.mapping(top["defaults"][1], "defaults").items():
            r.ident(kk, f"defaults.{kind}", "device kind")
            rules, found = _read_rules_map(r, knode, f"defaults.{kind}", None)
            defaults[kind] = rules
            types_by_kind[kind] = found
            all_types.update(found)

    projects: dict[str, ProjectRules] = {}
    if "projects" in top:
        for project, (pk, pnode) in r.mapping(top["projects"][1], "projects").items():
            ppath = f"projects.{project}"
            r.ident(pk, ppath, "project id")
            proj = ProjectRules()
            known = dict(all_types)
            for key, (sk, snode) in r.mapping(pnode, ppath).items():
                if key == "kinds":
                    for kind, (kk, knode) in r.mapping(snode, f"{ppath}.kinds").items():
                        kpath = f"{ppath}.kinds.{kind}"
                        r.ident(kk, kpath, "device kind")
                        rules, found = _read_rules_map(r, knode, kpath, types_by_kind.get(kind, {}))
                        proj.kinds[kind] = rules
                        known.update(found)
                elif key != "devices":
                    raise r.fail(sk, f"{ppath}.{key}", "unknown section; allowed: kinds, devices")
            if "devices" in (sections := r.mapping(pnode, ppath)):
                dnode_all = sections["devices"][1]
                for device, (dk, dnode) in r.mapping(dnode_all, f"{ppath}.devices").items():
                    dpath = f"{ppath}.devices.{device}"
                    r.ident(dk, dpath, "device id")
                    proj.devices[device], _ = _read_rules_map(r, dnode, dpath, known)
            projects[project] = proj

    ruleset = RuleSet(source, update_interval, quiet, defaults, projects, lines, quiet_mark)
    ruleset.check_all()
    return ruleset


def default_rules_text() -> str:
    return resources.files("services.rules").joinpath(DEFAULT_RULES_NAME).read_text("utf-8")


def load_rules(path: str | None) -> RuleSet:
    """The rule file at `path`, or the packaged defaults when `path` is None."""
    if path is None:
        return parse_rules(default_rules_text(), f"<package>/{DEFAULT_RULES_NAME}")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise RulesConfigError(
            path, None, "", f"cannot read the rule file: {exc.strerror}"
        ) from None
    return parse_rules(text, path)
