"""Row-builder cost per record, in process: `python -m loadtests.bench_rows`.

Decodes a batch of realistic records per native stream (the load generator's payloads) once,
then times the ingest row builder that turns them into COPY tuples, best of several repeats.
The builders run once per record on the hot path, so a change to how they are made (by hand
or generated from the stream definitions) is measured here, not in a timed test.
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import UTC, datetime

from loadtests.payloads import PayloadMaker
from services.core.contracts import decode
from services.protocols.rows import BUILDERS


def bench(stream: str, batch: int, repeats: int) -> float:
    """Best nanoseconds per record of the `stream` row builder over `repeats` runs."""
    payload = PayloadMaker(stream, "bench-1", batch=batch).render(1, 1_700_000_000_000)
    decoded = decode(stream, payload)
    _, build = BUILDERS[stream]
    received = datetime.now(UTC)
    best = float("inf")
    for _ in range(repeats):
        out: list[tuple[object, ...]] = []
        gc.collect()
        gc.disable()  # a collection inside one run is noise, not the builder's cost
        try:
            began = time.perf_counter_ns()
            build("bench", "bench-1", decoded.records, decoded.times, received, out)
            best = min(best, (time.perf_counter_ns() - began) / len(decoded.records))
        finally:
            gc.enable()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    for stream in ("link", "agv", "inspection", "telemetry"):
        print(f"{stream:12} {bench(stream, args.batch, args.repeats):8.1f} ns/record")


if __name__ == "__main__":
    main()
