"""`dispatch-tui report`: the shift's numbers as fractiles, and a per-assignment CSV export.

Times on the command line: ISO 8601 (`2026-11-23T07:00`, a naive time is local time), a date
(`2026-11-23`), `now`, `shift` (start of the current shift), or an age such as `8h`, `90m`, `2d`.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dispatch_tui.rules import norms
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.norms import clock
from dispatch_tui.service.read_service import ReadService

AGE = re.compile(r"^(\d{1,5})\s*([mhd])$")
# What PostgreSQL takes in a timestamptz: offsets up to 15:59 (Python allows 23:59). The years
# are the report's own bound, well inside both PostgreSQL's range and Python's, whose ends a
# conversion to local time would overflow (0001-01-01 in UTC-5 is before year 1).
MAX_OFFSET = timedelta(hours=15, minutes=59, seconds=59)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)


def parse_time(value: str, now: datetime) -> datetime:
    """A time as typed on the command line; InvalidInput for one PostgreSQL would refuse."""
    text = value.strip().lower()
    if text == "now":
        return now
    if text == "shift":
        return norms.shift_start(now)
    match = AGE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        parsed = now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    else:
        parsed = _iso_time(value)
    try:
        # A naive time is local time; the report prints its window in local time too.
        parsed = parsed.astimezone() if parsed.tzinfo is None else parsed
        in_range = EARLIEST <= parsed <= LATEST
        parsed.astimezone()
    except (OverflowError, ValueError, OSError):  # beyond what the local clock can show
        in_range = False
    if not in_range:
        raise InvalidInput(f"'{value[:32]}' is out of range (years {EARLIEST:%Y} to {LATEST:%Y})")
    return parsed


def _iso_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"'{value[:32]}' is not a time (ISO 8601, now, shift, or an age like 8h)"
        ) from None
    offset = parsed.utcoffset()
    if offset is not None and abs(offset) > MAX_OFFSET:
        raise InvalidInput(f"'{value[:32]}' has a UTC offset out of range (from -15:59 to +15:59)")
    return parsed


def run(
    service: ReadService,
    out: Console,
    *,
    since: str | None,
    until: str | None,
    by: str | None,
    csv_path: str | None,
    as_json: bool,
) -> int:
    now = datetime.now(UTC)
    start = parse_time(since, now) if since else now - timedelta(hours=24)
    end = parse_time(until, now) if until else now
    if end <= start:
        raise InvalidInput("--until must be later than --since")
    groups = service.kpis({"report": (start, end)}, by=by)["report"]
    exported = 0
    if csv_path:
        rows = service.export(start, end)
        exported = len(rows)
        _write_csv(Path(csv_path), rows)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "since": start.isoformat(),
                    "until": end.isoformat(),
                    "by": by or "all",
                    "groups": {g: [_kpi_json(k) for k in ks] for g, ks in groups.items()},
                    "csv_rows": exported,
                }
            )
        )
        return 0
    for group, kpis in groups.items():
        title = f"{start.astimezone():%Y-%m-%d %H:%M} – {end.astimezone():%Y-%m-%d %H:%M}"
        table = Table(
            title=title if by is None else f"{title} · {by} {group}", title_justify="left"
        )
        for column in ("Interval", "Count", "50th", "90th", "Goal", "Within goal", "90th vs goal"):
            table.add_column(column, justify="left" if column == "Interval" else "right")
        for k in kpis:
            verdict = (
                Text("—")
                if k.ok is None
                else Text("MET" if k.ok else "MISSED", style="green" if k.ok else "bold red")
            )
            table.add_row(
                k.norm.label,
                str(k.count),
                "—" if k.p50 is None else clock(k.p50),
                "—" if k.p90 is None else clock(k.p90),
                clock(k.norm.goal_seconds),
                "—" if k.share is None else f"{k.share:.0%}",
                verdict,
            )
        out.print(table)
    if csv_path:
        out.print(f"{exported} assignments written to {csv_path}", markup=False, highlight=False)
    return 0


def _kpi_json(k: norms.Kpi) -> dict[str, Any]:
    return {
        "interval": k.norm.key,
        "count": k.count,
        "p50_s": k.p50,
        "p90_s": k.p90,
        "goal_s": k.norm.goal_seconds,
        "within_goal": k.met,
        "share": k.share,
        "met": k.ok,
    }


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0]) if rows else ["call_number", "unit", "time_problems"]
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as err:
        raise InvalidInput(f"cannot write {path}: {err.strerror}") from None
