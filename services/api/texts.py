"""The reader's language for server-side texts: a `lang` query parameter, else the
`Accept-Language` header (zh, zh-CN, zh-Hans ... -> zh; anything else -> en).

Why "asked" is kept apart from "default": an alarm's stored `message` is the English text
the rules engine wrote, and clients that ask for no language keep reading exactly that.
A client that asks (the dashboard always does) gets every alarm rendered from its facts in
its language (`services/protocols/texts.py`), English by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from services.api.errors import invalid
from services.protocols import texts
from services.protocols.notify.message import LANGUAGES, Language


@dataclass(frozen=True, slots=True)
class Reading:
    """The language to render in, and whether the reader asked for one at all."""

    lang: Language
    asked: bool

    def alarm(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """An alarm row (or live transition) with `rule_name` in the reader's language and,
        when a language was asked for, `message` rendered from the row's facts."""
        out = dict(row)
        facts = texts.facts_of(out.get("evidence"))
        out["rule_name"] = texts.rule_name(str(out.get("rule") or ""), facts, self.lang)
        if self.asked:
            value = out.get("last_value", out.get("value"))
            out["message"] = texts.alarm_message(
                facts, self.lang, str(out.get("message") or ""), value
            )
        return out


def reading(
    request: Request,
    lang: Annotated[
        str | None,
        Query(
            max_length=35,
            description="Language of alarm messages, rule and KPI names: `en` or `zh` "
            "(also `zh-CN` ...). Without it, `Accept-Language` decides; without both, "
            "alarm messages are the stored English text.",
        ),
    ] = None,
) -> Reading:
    if lang is not None:
        chosen = texts.language_of(lang)
        if chosen is None:
            raise invalid(f"lang must be one of {', '.join(LANGUAGES)} (e.g. zh-CN), got {lang!r}")
        return Reading(chosen, True)
    header = request.headers.get("accept-language")
    if header is None or not header.strip():
        return Reading(texts.DEFAULT_LANGUAGE, False)
    return Reading(texts.negotiate(header), True)


Lang = Annotated[Reading, Depends(reading)]
