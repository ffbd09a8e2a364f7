"""`python -m bench [names...]`: run the benchmarks, each on its own throwaway server.

Names: dispatch, contention, propagation, refresh, startup, kpis, moves, alerts, gazetteer, fanout,
map (default: all, in that order).
Prints the machine, then one Markdown table per benchmark with our figure, its reference measured
in the same run on the same server, and their ratio, followed by each goal: met or MISSED.
`--list` prints the names. The exit status is 0 even when goals are missed: a benchmark measures,
it does not gate; it is 1 only when a benchmark could not run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable

from bench.common import Report, machine, throwaway_server

BENCHMARKS = {
    "dispatch": "bench.dispatch",
    "contention": "bench.contention",
    "propagation": "bench.propagation",
    "refresh": "bench.refresh",
    "startup": "bench.startup",
    "kpis": "bench.kpis",
    "moves": "bench.moves",
    "alerts": "bench.alerts",
    "gazetteer": "bench.gazetteer",
    "fanout": "bench.fanout",
    "map": "bench.map",
    "failover": "bench.failover",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--list", action="store_true", help="print the benchmark names")
    ns = parser.parse_args(argv)
    if ns.list:
        print("\n".join(BENCHMARKS))
        return 0
    unknown = [n for n in ns.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = ns.names or list(BENCHMARKS)

    info = machine()
    print("## Machine\n")
    print(
        f"- {info['nproc']} CPUs ({info['cpu']}), {info['memory']} memory, kernel {info['kernel']}, "
        f"Python {info['python']}"
    )
    print(f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    sys.stdout.flush()

    failed = 0
    started = time.monotonic()
    for name in names:
        run: Callable[..., Report] = importlib.import_module(BENCHMARKS[name]).run
        began = time.monotonic()
        try:
            with throwaway_server() as srv:
                version = srv.version()
                report = run(srv)
        except Exception:
            failed += 1
            print(f"### {name}: could not run\n\n```\n{traceback.format_exc()}```\n")
            continue
        print(report.render())
        print(
            f"_{name}: {time.monotonic() - began:.0f} s on PostgreSQL {version}; "
            f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}_\n"
        )
        sys.stdout.flush()
    print(f"_all: {time.monotonic() - started:.0f} s_")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
