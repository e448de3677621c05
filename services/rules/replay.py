"""`factory5g rules replay`: evaluate the rules over stored history, to tune thresholds.

Reads the stream hypertables between two times, merges them into one time-ordered stream
and feeds the same engine the live service uses, with the records' own time as the clock.
Nothing is stored or published: the transitions are printed (text or JSON lines) with a
summary, so a rule file can be tried against last week's data before it goes live.
"""

from __future__ import annotations

import asyncio
import heapq
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import orjson

from services.core.contracts import Decoded, Defect, Topic
from services.core.db import asyncpg_dsn
from services.core.settings import Settings
from services.core.streams import STREAM_DEFS, StreamDef
from services.rules.config import RulesConfigError, RuleSet, load_rules
from services.rules.engine import Engine, Transition

DEFAULT_KIND = {"inspection": "vision", "agv": "agv", "link": "cpe"}
# The streams replayed (the rules judge these), in a fixed order for ties; records are
# rebuilt from their columns by loaders generated from the stream definitions.
_TABLES = {s: STREAM_DEFS[s].table for s in ("inspection", "agv", "link")}
_AGO_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FETCH = 5000


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (UTC when no offset), `now`, or an age like `2h` / `7d` meaning that long ago."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if value == "now":
        return now
    m = _AGO_RE.match(value)
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use ISO 8601, `now` or an age like 2h") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class ReplaySummary:
    records: int = 0
    seconds: float = 0.0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        out = [f"replayed {self.records} records in {self.seconds:.2f} s ({rate:,.0f}/s)"]
        for (rule, transition), n in sorted(self.transitions.items()):
            out.append(f"  {rule:20} {transition:10} {n}")
        return out


def _defects(raw: Any) -> list[Defect]:
    """The `defects` column (JSON text or already decoded) back into Defect structs."""
    if not raw:
        return []
    items = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return msgspec.convert(items or [], list[Defect])


def _loader_source(d: StreamDef) -> str:
    """A function from a stored row (and its ts in epoch ms) to the record struct."""
    args = ["ts=ts"]
    for col in (c for c in d.columns if c.field is not None and c.load is not None):
        value = f"row[{col.name!r}]"
        args.append(
            f"{col.field}={value}"
            if col.load == "c"
            else f"{col.field}=(lambda c: {col.load})({value})"
        )
    return f"def load(row, ts):\n    return Record({', '.join(args)})\n"


def loader(d: StreamDef) -> Callable[[Any, int], Any]:
    """The record of `d` from one stored row (column -> value) and its ts in epoch ms."""
    if d.explode is not None:
        raise ValueError(f"{d.name} is stored one row per {d.explode} entry")
    namespace: dict[str, Any] = {"Record": d.record, "_defects": _defects}
    exec(compile(_loader_source(d), f"<replay of {d.name}>", "exec"), namespace)
    load: Callable[[Any, int], Any] = namespace["load"]
    return load


_LOADERS = {stream: loader(STREAM_DEFS[stream]) for stream in _TABLES}


def _record(stream: str, row: asyncpg.Record) -> Any:
    return _LOADERS[stream](row, int(row["ts"].timestamp() * 1000))


async def _rows(
    conn: asyncpg.Connection, stream: str, start: datetime, end: datetime, project: str | None
) -> AsyncIterator[tuple[datetime, int, str, asyncpg.Record]]:
    table = _TABLES[stream]
    where = "s.ts >= $1 AND s.ts < $2" + (" AND s.project_id = $3" if project else "")
    sql = (
        f"SELECT s.*, d.kind AS device_kind FROM {table} s LEFT JOIN devices d "
        f"ON d.project_id = s.project_id AND d.device_id = s.device_id "
        f"WHERE {where} ORDER BY s.ts, s.seq"
    )
    args: list[Any] = [start, end, project] if project else [start, end]
    order = list(_TABLES).index(stream)
    async for row in conn.cursor(sql, *args, prefetch=FETCH):
        yield row["ts"], order, stream, row


async def _merged(
    conns: list[asyncpg.Connection], start: datetime, end: datetime, project: str | None
) -> AsyncIterator[tuple[datetime, int, str, asyncpg.Record]]:
    """The three stream tables as one stream, ordered by time (ties: a fixed stream order)."""
    iters = [_rows(c, s, start, end, project) for c, s in zip(conns, _TABLES, strict=True)]
    heads: list[tuple[datetime, int, str, Any, int]] = []
    for i, it in enumerate(iters):
        first = await anext(it, None)
        if first is not None:
            heads.append((first[0], first[1], first[2], first[3], i))
    heapq.heapify(heads)
    while heads:
        ts, order, stream, row, i = heapq.heappop(heads)
        yield ts, order, stream, row
        nxt = await anext(iters[i], None)
        if nxt is not None:
            heapq.heappush(heads, (nxt[0], nxt[1], nxt[2], nxt[3], i))


async def replay(
    database_url: str,
    ruleset: RuleSet,
    start: datetime,
    end: datetime,
    project: str | None = None,
    emit: Callable[[Transition], None] | None = None,
    tick_s: float = 1.0,
) -> ReplaySummary:
    """Evaluate `ruleset` over [start, end); `emit` sees each transition in time order."""
    engine = Engine(ruleset)
    summary = ReplaySummary()
    topics: dict[tuple[str, str, str], Topic] = {}
    next_tick = start.timestamp() + tick_s
    began = time.perf_counter()

    def out(transitions: list[Transition]) -> None:
        for tr in transitions:
            summary.transitions[(tr.rule, tr.transition)] += 1
            if emit is not None:
                emit(tr)

    conns = [await asyncpg.connect(asyncpg_dsn(database_url)) for _ in _TABLES]
    try:
        transactions = [c.transaction(readonly=True) for c in conns]
        for tx in transactions:
            await tx.start()
        async for ts, _, stream, row in _merged(conns, start, end, project):
            t = ts.timestamp()
            while t >= next_tick:  # the clock of absence rules follows the records
                out(engine.tick(next_tick))
                next_tick += tick_s
            key = (row["project_id"], row["device_id"], stream)
            topic = topics.get(key)
            if topic is None:
                kind = row["device_kind"] or DEFAULT_KIND[stream]
                topic = topics[key] = Topic(key[0], kind, key[1], stream)
            out(engine.process(topic, Decoded([_record(stream, row)], [ts]), t))
            summary.records += 1
        for tx in transactions:
            await tx.rollback()
    finally:
        for c in conns:
            await c.close()
    summary.seconds = time.perf_counter() - began
    return summary


def format_transition(tr: Transition) -> str:
    when = datetime.fromtimestamp(tr.at, UTC).isoformat().replace("+00:00", "Z")
    value = "" if tr.value is None else f" value={tr.value:.4g}"
    return (
        f"{when} {tr.transition:9} {tr.project}/{tr.device} {tr.rule} "
        f"[{tr.severity}]{value} count={tr.count}: {tr.message}"
    )


def transition_json(tr: Transition) -> bytes:
    return orjson.dumps(
        {
            "at": datetime.fromtimestamp(tr.at, UTC).isoformat().replace("+00:00", "Z"),
            "transition": tr.transition,
            "project": tr.project,
            "kind": tr.kind,
            "device": tr.device,
            "rule": tr.rule,
            "severity": tr.severity,
            "value": tr.value,
            "count": tr.count,
            "message": tr.message,
            "evidence": tr.evidence,
        },
        option=orjson.OPT_NON_STR_KEYS,
    )


def run_replay(
    settings: Settings,
    start: str,
    end: str,
    project: str | None,
    rules_file: str | None,
    as_json: bool,
) -> int:
    """The CLI body; returns the exit status (2 for a bad rule file or time)."""
    try:
        ruleset = load_rules(rules_file or settings.rules.rules_file)
        begin, finish = parse_when(start), parse_when(end)
    except (RulesConfigError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2

    def emit(tr: Transition) -> None:
        if as_json:
            sys.stdout.write(transition_json(tr).decode() + "\n")
        else:
            print(format_transition(tr))

    summary = asyncio.run(replay(settings.database.url, ruleset, begin, finish, project, emit))
    for line in summary.lines():
        print(line, file=sys.stderr)
    return 0
