"""The plant benchmark's verdicts: absent routes are "not measured", never failures, and the
export's rows/s stands beside psql's on the same query."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import report
from loadtests.bench_plant import REFERENCES, _literal_copy_sql, derive
from loadtests.cli import parser
from loadtests.scenarios import SCENARIOS


def _lat(p95: float) -> dict[str, Any]:
    return {"measured": True, "p50": p95 / 2, "p95": p95, "p99": p95, "n": 5.0}


def test_absent_routes_are_not_measured_and_figures_meet_their_targets(tmp_path: Path) -> None:
    figures: dict[str, Any] = {
        "latency_ms": {
            "kpi": _lat(60.0),
            "oee": {"measured": False, "reason": "route absent: 404"},
            "availability": _lat(700.0),
            "report_html": _lat(120.0),
            "report_csv": _lat(130.0),
        },
        "export": {"measured": True, "rows": 300_000, "s": 2.0, "rows_per_s": 150_000.0},
        "export_reference": {"measured": True, "s": 3.0, "rows_per_s": 100_000.0},
    }
    derived = derive(figures)
    assert derived["not_measured"] == ["oee"]
    assert derived["export_to_copy"] == 1.5
    assert derived["report_to_kpi"] == 2.0
    doc = report.build_result(
        SCENARIOS["plant"], [], "2026-12-02T02:00:00+00:00", 60.0, [], figures=derived
    )
    doc["references"] = [
        {"label": label, "value": derived[fig], "unit": unit, "reference": ref_label,
         "reference_value": derived[ref], "ratio": derived[rk], "ratio_of": meaning}
        for label, fig, unit, ref_label, ref, rk, meaning in REFERENCES
    ]  # fmt: skip
    met = {t["path"]: t["met"] for t in doc["targets"]}
    assert met == {
        "oee_p95_ms": None,  # not measured, not failed
        "availability_p95_ms": False,  # 700 ms > 500 ms
        "report_html_p95_ms": True,
        "export_rows_per_s": True,
    }
    md = (report.write(doc, tmp_path) / "report.md").read_text()
    assert "| CSV export rows/s | 150,000 rows/s | psql \\copy rows/s | 100,000 rows/s |" in md
    assert "| 2/4 (1 not measured) |" in (tmp_path / "latest.md").read_text()


def test_the_reference_copies_the_exports_own_query() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 11, 4, tzinfo=UTC)
    sql = _literal_copy_sql("p1", start, end)
    assert "project_id = 'p1' AND ts >= '2026-11-01T00:00:00+00:00'" in sql
    assert "ts < '2026-11-04T00:00:00+00:00' ORDER BY ts, device_id, seq" in sql
    assert "$" not in sql


def test_bench_plant_is_a_registered_scenario() -> None:
    assert SCENARIOS["plant"].kind == "plant"
    args, extra = parser().parse_known_args(["plant", "--reuse", "/tmp/x", "--days", "2"])
    assert args.scenario == "plant"
    assert "--reuse" in extra
