"""5. Start-up and memory: a desk's first full paint and its RSS, with 500 units, 200 open calls
(100 pending, 100 with a unit on the way) and 100k closed calls in the history.

Each start is a fresh subprocess (`python -m bench.startup_child ...`), so imports count and
memory is the process's own. The child does what `dispatch-tui desk` does (open the database with the
schema check, look up the operator, build the desk) but runs the app headless with
`App.run_test`; it wraps the Hospitals pane's `sync` (the last pane a snapshot fills) to note when
the first full snapshot is in the panes, and `call_after_refresh` to note when it has been
painted. A second later (when any later start-up snapshot has landed) it measures its CPU use
over 1.5 idle seconds, then its RSS and peak RSS (VmRSS, VmHWM in /proc/self/status).

Reference, same server, same rows: a bare Textual app with the same four tables filled from three
plain psycopg queries.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BenchServer,
    Report,
    add_history,
    add_pending_calls,
    add_units,
    ratio,
    service_for,
    throwaway_server,
)
from bench.startup_child import DISPATCHED, PENDING

UNITS = 500  # in all, with the 12 of the demo area
HISTORY = 100_000
RUNS = 2  # starts of each kind; the mean is reported (each desk start takes seconds)


# -- the benchmark -------------------------------------------------------------------------------


def prepare(srv: BenchServer) -> str:
    url = srv.dispatch_database()
    engine, service = service_for(url)
    try:
        units = add_units(engine, UNITS - 12)
        numbers = add_pending_calls(engine, PENDING + DISPATCHED)
        for number, unit in zip(numbers[:DISPATCHED], units, strict=False):
            service.dispatch("alice", number, [unit])
    finally:
        engine.dispose()
    add_history(srv, "dispatch", HISTORY)
    return url


def start(kind: str, target: str) -> dict[str, Any]:
    launched = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.startup_child", kind, target],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} start failed:\n{proc.stdout}\n{proc.stderr}")
    marks: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    marks["launched"] = launched
    return marks


def run(srv: BenchServer) -> Report:
    url = prepare(srv)
    ours = [start("desk", url) for _ in range(RUNS)]
    reference = [start("reference", srv.conninfo("dispatch")) for _ in range(RUNS)]

    def median(runs: list[dict[str, Any]], a: str, b: str) -> float:
        return statistics.mean(1000 * (r[b] - r[a]) for r in runs)

    def mem(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.mean(r[key] for r in runs)

    rows = []
    for name, a, b in (
        ("launch → interpreter running our code", "launched", "start"),
        ("imports", "start", "imported"),
        ("connect, schema check, operator", "imported", "connected"),
        ("app start → first full snapshot applied", "app", "applied"),
        ("app start → first full paint", "app", "painted"),
        ("launch → first full paint", "launched", "painted"),
    ):
        ours_ms, ref_ms = median(ours, a, b), median(reference, a, b)
        rows.append([name, ours_ms, ref_ms, ratio(ours_ms, ref_ms)])
    idle_ours, idle_ref = 100 * mem(ours, "idle_cpu"), 100 * mem(reference, "idle_cpu")
    rows.append(
        ["CPU while idle afterwards, % of a core", idle_ours, idle_ref, ratio(idle_ours, idle_ref)]
    )
    for name, key in (("RSS after paint, MiB", "VmRSS"), ("peak RSS (VmHWM), MiB", "VmHWM")):
        rows.append(
            [name, mem(ours, key), mem(reference, key), ratio(mem(ours, key), mem(reference, key))]
        )
    report = Report(
        f"5. Start-up and memory ({UNITS} units, {PENDING + DISPATCHED} open calls, "
        f"{HISTORY // 1000}k closed calls)"
    )
    report.table([f"mean of {RUNS} starts", "desk", "bare Textual + psycopg", "ratio"], rows)
    paint = median(ours, "app", "painted")
    peak = mem(ours, "VmHWM")
    report.goal("first full paint ≤ 1 s (app start → painted)", f"{paint:.0f} ms", paint <= 1000)
    report.goal("RSS ≤ 150 MB (peak)", f"{peak:.0f} MiB", peak <= 150)
    shown = ours[0]
    report.note(
        f"the desk showed {shown['units_shown']} units and {shown['calls_shown']} open calls; "
        f"launch → painted from process start: {median(ours, 'launched', 'painted'):.0f} ms"
    )
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
