"""`dispatch-tui gis import FILE`: load the agency's addresses and streets into the gazetteer.

A progress bar on a terminal (on stderr, so that what a script reads stays clean), then one line
of what was loaded and, below it, the rows refused, counted by why, with the first few named.
Loading the same file again changes nothing and says so. Exit 0 once it is loaded (rows refused
or not), 2 when the file has rows but not one of them could be loaded, 3 when there is no such
file, 5 when this login may not write the gazetteer.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from dispatch_tui.cli import launch
from dispatch_tui.config import Settings
from dispatch_tui.db.connect import open_database
from dispatch_tui.rules.addresses import GazetteerImport
from dispatch_tui.rules.errors import ExitCode, InvalidInput
from dispatch_tui.service import gazetteer_import


def add_import(gis: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """`gis import FILE [--source NAME] [--replace [--force]]`, on the CLI only (the command
    bar reads no files)."""
    parser = gis.add_parser(
        "import",
        help="load addresses and streets: OpenAddresses-style CSV or GeoJSON (safe to repeat)",
        description="Load address points (CSV rows LON,LAT,NUMBER,STREET,UNIT,CITY,DISTRICT,"
        "REGION,POSTCODE,ID,HASH, or GeoJSON Points) and street lines (GeoJSON LineStrings and "
        "MultiLineStrings) into the gazetteer. Rows are kept by source and id: loading the "
        "same data again changes nothing, a corrected row is changed in place.",
        parents=[common],
    )
    parser.add_argument("file", help="a .csv or .geojson file")
    parser.add_argument(
        "--source",
        help="the name its rows are kept under (default: the file's name)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="the file is the whole source now: load it and remove the source's rows it no "
        "longer has, in one transaction (refused, nothing written, when the file has refused "
        "rows, or lacks more than a quarter of the source's points or lines)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --replace: remove them even when that is more than a quarter of the source",
    )
    parser.set_defaults(verb="gis.import")


def run_import(ns: argparse.Namespace, settings: Settings, out: Console, as_json: bool) -> int:
    if ns.force and not ns.replace:
        raise InvalidInput("--force goes with --replace")
    db = open_database(settings.database_url, settings.data_dir)
    sessions = launch.service(db, settings).sessions
    path = Path(ns.file)
    if sys.stderr.isatty() and not as_json:
        with Progress(
            TextColumn("loading {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(path.name, total=None)

            def moved(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = gazetteer_import.load_file(
                sessions,
                path,
                source=ns.source,
                progress=moved,
                replace=ns.replace,
                force=ns.force,
            )
    else:
        report = gazetteer_import.load_file(
            sessions, path, source=ns.source, replace=ns.replace, force=ns.force
        )
    points, lines = gazetteer_import.counts(sessions)
    message = _summary(report, points, lines)
    if as_json:
        print(json.dumps({"ok": True, "message": message, **asdict(report)}))
    else:
        out.print(Text(message))
        for why, count in report.refused.items():
            out.print(Text(f"  refused {count:,}: {why}"))
        for example in report.examples:
            out.print(Text(f"    e.g. {example}"))
    nothing = report.rows and report.refused_total == report.rows
    return int(ExitCode.INVALID) if nothing else 0


def _summary(report: GazetteerImport, points: int, lines: int) -> str:
    """`12,000 rows of city.csv: 11,950 address points and 0 street lines written, 0
    unchanged, 50 refused; the gazetteer has 11,950 points and 0 lines`."""
    retired = (
        f", {report.retired_points:,} points and {report.retired_lines:,} lines the file no "
        "longer has removed"
        if report.retired_points or report.retired_lines
        else ""
    )
    note = f" ({report.note})" if report.note else ""
    return (
        f"{report.rows:,} rows of {report.source}: {report.points:,} address points and "
        f"{report.segments:,} street lines written, {report.unchanged:,} unchanged, "
        f"{report.refused_total:,} refused{retired}; the gazetteer has {points:,} points and "
        f"{lines:,} lines{note}"
    )
