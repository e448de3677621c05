"""What a notice says, in English and Chinese: a title, labelled fields, plain text and
markdown, rendered once per delivery from an `AlarmNotice`.

Every channel renders through here so an e-mail, a WeCom message and a Feishu card say the
same thing. The fields that come from devices and rule files (device id, project name,
message, evidence...) are untrusted: control characters become spaces (no forged lines, no
header injection in an e-mail subject), each field has a length cap, and in markdown they are
made inert (full-width look-alikes of the markdown and HTML brackets) so a device cannot
plant a link, an `<at id=all>` mention or a `<font>` tag in a group chat. Vendor size
limits are met by `truncate_utf8`, which never splits a character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from services.protocols import texts
from services.protocols.notify.message import AlarmNotice, Language, NoticeKind

# Per-field caps (characters) for what devices and rule files can make long.
FIELD_MAX: Final = 200
MESSAGE_MAX: Final = 1000
ELLIPSIS: Final = "…"
ZH_COLON: Final = "\uff1a"  # the full-width colon of Chinese text

SEVERITY_NAMES: Final[dict[Language, dict[str, str]]] = {
    "en": {"critical": "Critical", "major": "Major", "minor": "Minor", "warning": "Warning",
           "info": "Info"},
    "zh": {"critical": "紧急", "major": "重要", "minor": "次要", "warning": "警告", "info": "提示"},
}  # fmt: skip

KIND_NAMES: Final[dict[Language, dict[NoticeKind, str]]] = {
    "en": {
        "opened": "Alarm opened",
        "escalated": "Severity raised",
        "acknowledged": "Alarm acknowledged",
        "cleared": "Alarm cleared",
        "reminder": "Reminder: alarm still unacknowledged",
        "escalation": "Escalation: alarm not acknowledged",
        "test": "Test notification",
    },
    "zh": {
        "opened": "告警触发",
        "escalated": "告警级别升高",
        "acknowledged": "告警已确认",
        "cleared": "告警已清除",
        "reminder": f"提醒{ZH_COLON}告警仍未确认",
        "escalation": f"升级通知{ZH_COLON}告警未被确认",
        "test": "测试通知",
    },
}

LABELS: Final[dict[Language, dict[str, str]]] = {
    "en": {
        "project": "Project", "line": "Line", "device": "Device", "rule": "Rule",
        "severity": "Severity", "state": "State", "value": "Value", "message": "Message",
        "time": "Time", "opened_at": "Opened at", "count": "Occurrences",
        "actor": "By", "level": "Escalation level", "dashboard": "Open in dashboard",
        "ref": "Ref",
    },
    "zh": {
        "project": "项目", "line": "产线", "device": "设备", "rule": "规则",
        "severity": "级别", "state": "状态", "value": "数值", "message": "信息",
        "time": "时间", "opened_at": "触发时间", "count": "发生次数",
        "actor": "操作人", "level": "升级层级", "dashboard": "在看板中查看",
        "ref": "编号",
    },
}  # fmt: skip

STATE_NAMES: Final[dict[Language, dict[str, str]]] = {
    "en": {"open": "open", "acknowledged": "acknowledged", "cleared": "cleared"},
    "zh": {"open": "未处理", "acknowledged": "已确认", "cleared": "已清除"},
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# What makes links, images, HTML tags (`<font>`, `<at id=all>`), autolinks, emphasis and
# code in the vendors' markdown, replaced in untrusted values by full-width look-alikes.
# Backslash escapes are not used: WeCom's and DingTalk's markdown subsets do not document
# them, and a literal backslash in every device id would be worse than a wider bracket.
_MD_NEUTRAL = str.maketrans(
    {"[": "\uff3b", "]": "\uff3d", "<": "\uff1c", ">": "\uff1e", "*": "\uff0a", "`": "\uff40"}
)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One notice in one language. `fields` are (label, value) pairs in display order, the
    values already cleaned but not escaped (e-mail HTML escapes them its own way)."""

    title: str
    fields: tuple[tuple[str, str], ...]
    text: str
    markdown: str
    link: str | None
    link_label: str


def utf8(text: str) -> str:
    """`text` as valid UTF-8: a lone surrogate (JSON's "\\ud800" decodes to one) becomes
    "?", instead of failing every encoder downstream (orjson, the e-mail, the byte cut)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()
    return text


def scrub(value: Any) -> Any:
    """`utf8` applied to every string (and string key) in a JSON-like value."""
    if isinstance(value, str):
        return utf8(value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def clean(value: object, limit: int = FIELD_MAX) -> str:
    """One line of at most `limit` characters: control characters and line breaks become a
    space, so an untrusted value can neither add lines nor headers."""
    text = _CONTROL.sub(" ", utf8(str(value))).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + ELLIPSIS
    return text


def md_escape(value: str) -> str:
    """A cleaned value made inert in the vendors' markdown: no link, image, HTML tag
    (`<font>`, `<at>`), bold or code can come from it, and it reads the same everywhere.
    (Headings and quotes need a line start, which cleaned values never have.)"""
    return value.translate(_MD_NEUTRAL)


def truncate_utf8(text: str, max_bytes: int, marker: str = ELLIPSIS) -> str:
    """`text` if its UTF-8 encoding fits in `max_bytes`, else its longest prefix that fits
    together with `marker`, cut between characters (never inside a multi-byte sequence)."""
    text = utf8(text)
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode())
    if room <= 0:
        return ""
    # errors="ignore" drops the partial character at the cut, and only that.
    return data[:room].decode("utf-8", errors="ignore") + marker


def format_time(at: datetime, tz: ZoneInfo | None) -> str:
    """A wall-clock time in the plant's zone, with the zone named (default UTC)."""
    zone = tz or ZoneInfo("UTC")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {zone.key} (UTC{offset[:3]}:{offset[3:]})"


def format_value(value: float | None, unit: str | None) -> str | None:
    if value is None:
        return None
    shown = f"{value:.6g}"
    return f"{shown} {clean(unit, 32)}" if unit else shown


def title_of(notice: AlarmNotice, language: Language) -> str:
    severity = SEVERITY_NAMES[language].get(notice.severity, clean(notice.severity, 32))
    kind = KIND_NAMES[language][notice.kind]
    rule, device = clean(notice.rule, 80), clean(notice.device, 80)
    if language == "zh":
        return f"【{severity}】{kind}{ZH_COLON}{rule} · {device}"
    return f"[{severity}] {kind}: {rule} on {device}"


def render(notice: AlarmNotice, language: Language, tz: ZoneInfo | None = None) -> Rendered:
    """Title, fields, text and markdown of `notice` in `language`, times in `tz` (UTC when
    not given; a route may set the plant's zone)."""
    labels = LABELS[language]
    zh = language == "zh"
    colon = ZH_COLON if zh else ": "
    fields: list[tuple[str, str]] = []

    project = clean(notice.project_name) or clean(notice.project)
    if notice.project_name and notice.project and notice.project_name != notice.project:
        project = f"{project} ({clean(notice.project, 80)})"
    fields.append((labels["project"], project))
    if notice.line:
        fields.append((labels["line"], clean(notice.line)))
    device = clean(notice.device)
    if notice.device_kind:
        device = f"{device} ({clean(notice.device_kind, 40)})"
    fields.append((labels["device"], device))
    facts = texts.facts_of(notice.evidence) or texts.facts_of({"text": notice.text})
    rule = clean(notice.rule)
    if facts is not None:  # the rule's name in the route's language, its id beside it
        rule = f"{clean(texts.rule_name(notice.rule, facts, language))} ({clean(notice.rule, 80)})"
    elif notice.rule_type and notice.rule_type != notice.rule:
        rule = f"{rule} ({clean(notice.rule_type, 40)})"
    fields.append((labels["rule"], rule))
    fields.append(
        (labels["severity"], SEVERITY_NAMES[language].get(notice.severity, clean(notice.severity)))
    )
    fields.append((labels["state"], STATE_NAMES[language].get(notice.state, clean(notice.state))))
    value = format_value(notice.value, notice.unit)
    if facts is not None:
        value = texts.value_text(facts, language, notice.value)
    if value is not None:
        fields.append((labels["value"], clean(value, 80)))
    message = texts.alarm_message(facts, language, notice.message, notice.value)
    if message:
        fields.append((labels["message"], clean(message, MESSAGE_MAX)))
    fields.append((labels["time"], format_time(notice.at, tz)))
    if notice.opened_at is not None and notice.kind != "opened":
        fields.append((labels["opened_at"], format_time(notice.opened_at, tz)))
    if notice.count > 1:
        fields.append((labels["count"], str(notice.count)))
    if notice.actor:
        fields.append((labels["actor"], clean(notice.actor, 80)))
    if notice.escalation_level > 0:
        fields.append((labels["level"], str(notice.escalation_level)))
    fields.append((labels["ref"], clean(notice.idempotency_key, 120)))

    title = title_of(notice, language)
    link = _safe_link(notice.dashboard_url)
    text_lines = [title, "", *(f"{k}{colon}{v}" for k, v in fields)]
    md_lines = [f"**{md_escape(k)}**{colon}{md_escape(v)}" for k, v in fields]
    if link:
        text_lines.append(f"{labels['dashboard']}{colon}{link}")
        md_lines.append(f"[{labels['dashboard']}]({link})")
    return Rendered(
        title=title,
        fields=tuple(fields),
        text="\n".join(text_lines) + "\n",
        markdown="\n\n".join(md_lines),
        link=link,
        link_label=labels["dashboard"],
    )


def _safe_link(url: str | None) -> str | None:
    """The dashboard link is configuration, not device data, but it still goes into
    markdown `(...)`: only http(s) URLs without spaces, brackets or quotes are linked."""
    if not url or not re.fullmatch(r"https?://[^\s()<>\[\]\"'`]+", url):
        return None
    return url
