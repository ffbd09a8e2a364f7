"""5. Start-up and memory: a desk's first full paint and its RSS, with 500 units, 200 open calls
(100 pending, 100 with a unit on the way) and 100k closed calls in the history; and the same at a
storm's size, 1,000 units and 10,000 open calls (9,500 pending, P1-P4; 500 with a unit on the
way), same history.

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
from dataclasses import dataclass
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

HISTORY = 100_000
RUNS = 3  # starts of each kind and size; the mean is reported (each start takes seconds)


@dataclass(frozen=True)
class Size:
    units: int  # in all, with the 12 of the demo area
    pending: int
    dispatched: int  # open calls with a unit on the way
    priorities: int  # the calls are P1 (1), or P1-P4 in turn (4)

    @property
    def label(self) -> str:
        return f"{self.pending + self.dispatched:,} open calls, {self.units:,} units"


TODAY = Size(units=500, pending=100, dispatched=100, priorities=1)
STORM = Size(units=1_000, pending=9_500, dispatched=500, priorities=4)
DATABASES = {"dispatch": TODAY, "storm": STORM}


# -- the benchmark -------------------------------------------------------------------------------


def prepare(srv: BenchServer, database: str, size: Size) -> str:
    url = srv.dispatch_database(database)
    engine, service = service_for(url)
    try:
        units = add_units(engine, size.units - 12)
        numbers = add_pending_calls(
            engine, size.pending + size.dispatched, priorities=size.priorities
        )
        for number, unit in zip(numbers[: size.dispatched], units, strict=False):
            service.dispatch("alice", number, [unit])
    finally:
        engine.dispose()
    add_history(srv, database, HISTORY)
    return url


def start(kind: str, *arguments: str) -> dict[str, Any]:
    launched = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.startup_child", kind, *arguments],
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
    urls = {db: prepare(srv, db, size) for db, size in DATABASES.items()}
    ours: dict[str, list[dict[str, Any]]] = {db: [] for db in DATABASES}
    reference: dict[str, list[dict[str, Any]]] = {db: [] for db in DATABASES}
    for _ in range(RUNS):  # the sizes in turn, so a burst of load on the machine hits both
        for db, size in DATABASES.items():
            ours[db].append(start("desk", urls[db]))
            reference[db].append(start("reference", srv.conninfo(db), str(size.pending)))

    def mean_ms(runs: list[dict[str, Any]], a: str, b: str) -> float:
        return float(statistics.mean(1000 * (r[b] - r[a]) for r in runs))

    def mem(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.mean(r[key] for r in runs))

    today, storm = ours["dispatch"], ours["storm"]
    rows = []
    for name, a, b in MARKS:
        ours_ms, ref_ms = mean_ms(today, a, b), mean_ms(reference["dispatch"], a, b)
        rows.append([name, ours_ms, ref_ms, ratio(ours_ms, ref_ms)])
    idle_ours, idle_ref = 100 * mem(today, "idle_cpu"), 100 * mem(reference["dispatch"], "idle_cpu")
    rows.append(
        ["CPU while idle afterwards, % of a core", idle_ours, idle_ref, ratio(idle_ours, idle_ref)]
    )
    for name, key in MEMORY:
        rows.append(
            [
                name,
                mem(today, key),
                mem(reference["dispatch"], key),
                ratio(mem(today, key), mem(reference["dispatch"], key)),
            ]
        )
    report = Report(
        f"5. Start-up and memory ({TODAY.label}, {HISTORY // 1000}k closed calls; "
        f"and at {STORM.label})"
    )
    report.table([f"mean of {RUNS} starts", "desk", "bare Textual + psycopg", "ratio"], rows)

    rows = []
    for name, a, b in MARKS[3:]:
        ours_ms, storm_ms = mean_ms(today, a, b), mean_ms(storm, a, b)
        ref_ms = mean_ms(reference["storm"], a, b)
        rows.append([name, ours_ms, storm_ms, ratio(storm_ms, ours_ms), ref_ms])
    idle_storm = 100 * mem(storm, "idle_cpu")
    rows.append(
        [
            "CPU while idle afterwards, % of a core",
            idle_ours,
            idle_storm,
            ratio(idle_storm, idle_ours),
            100 * mem(reference["storm"], "idle_cpu"),
        ]
    )
    for name, key in MEMORY:
        rows.append(
            [
                name,
                mem(today, key),
                mem(storm, key),
                ratio(mem(storm, key), mem(today, key)),
                mem(reference["storm"], key),
            ]
        )
    report.table(
        [
            f"desk, mean of {RUNS} starts",
            f"at {TODAY.label}",
            f"at {STORM.label}",
            "storm / today",
            "bare Textual + psycopg, storm",
        ],
        rows,
    )

    paint = mean_ms(today, "app", "painted")
    peak = mem(today, "VmHWM")
    report.goal("first full paint ≤ 1 s (app start → painted)", f"{paint:.0f} ms", paint <= 1000)
    report.goal("RSS ≤ 150 MB (peak)", f"{peak:.0f} MiB", peak <= 150)
    storm_paint = mean_ms(storm, "app", "painted")
    report.goal(
        f"first full paint at {STORM.label} ≤ 2× at {TODAY.label} (app start → painted)",
        f"{storm_paint / paint:.2f}× ({storm_paint:.0f} vs {paint:.0f} ms)",
        storm_paint <= 2 * paint,
    )
    for db, size in DATABASES.items():
        shown = ours[db][0]
        report.note(
            f"at {size.label} the desk showed {shown['units_shown']:,} units and "
            f"{shown['calls_shown']:,} open calls; launch → painted from process start: "
            f"{mean_ms(ours[db], 'launched', 'painted'):.0f} ms"
        )
    return report


MARKS = (
    ("launch → interpreter running our code", "launched", "start"),
    ("imports", "start", "imported"),
    ("connect, schema check, operator", "imported", "connected"),
    ("app start → first full snapshot applied", "app", "applied"),
    ("app start → first full paint", "app", "painted"),
    ("launch → first full paint", "launched", "painted"),
)
MEMORY = (("RSS after paint, MiB", "VmRSS"), ("peak RSS (VmHWM), MiB", "VmHWM"))


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
