"""Renders docs/settings.md from the `Settings` model, so the page cannot drift from code."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from services.core.settings import ENV_DELIMITER, ENV_PREFIX, Settings, env_default


def _default(field: FieldInfo) -> str:
    default = env_default(field)
    return default if default in ("(unset)", "***") else f"`{default}`"


def render() -> str:
    lines = [
        "# Settings",
        "",
        "Every service reads its settings from environment variables; defaults suit the local",
        f"stack. Nested keys join with `{ENV_DELIMITER}`. An invalid value stops the service at",
        "start with the variable named. Generated from `services/core/settings.py` by",
        "`factory5g settings --markdown`.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines += [f"## {name}", "", "| variable | default | meaning |", "| --- | --- | --- |"]
            for sub, sub_field in annotation.model_fields.items():
                key = f"{ENV_PREFIX}{name.upper()}{ENV_DELIMITER}{sub.upper()}"
                lines.append(f"| `{key}` | {_default(sub_field)} | {sub_field.description or ''} |")
            lines.append("")
        else:
            lines += [
                "## general",
                "",
                "| variable | default | meaning |",
                "| --- | --- | --- |",
                f"| `{ENV_PREFIX}{name.upper()}` | {_default(field)} | {field.description or ''} |",
                "",
            ]
    return "\n".join(lines)
