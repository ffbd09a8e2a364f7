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


def parse_time(value: str, now: datetime) -> datetime:
    text = value.strip().lower()
    if text == "now":
        return now
    if text == "shift":
        return norms.shift_start(now)
    match = AGE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"'{value[:32]}' is not a time (ISO 8601, now, shift, or an age like 8h)"
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()


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
