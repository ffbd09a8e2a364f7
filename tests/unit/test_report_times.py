"""Times as `dispatch-tui report` reads them (cli/report.py): only those PostgreSQL takes, and
refusals as one line, never an error from deep inside a conversion or the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch_tui.cli.report import parse_time
from dispatch_tui.rules.errors import InvalidInput

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0001-01-01", "'0001-01-01' is out of range (years 1900 to 9998)"),
        (
            "0001-01-01T00:00:00+14:00",
            "'0001-01-01T00:00:00+14:00' is out of range (years 1900 to 9998)",
        ),
        (
            "9999-12-31T23:59:59-15:59",
            "'9999-12-31T23:59:59-15:59' is out of range (years 1900 to 9998)",
        ),
        ("99999d", "'99999d' is out of range (years 1900 to 9998)"),
        (
            "2026-01-01T00:00:00-23:59",
            "'2026-01-01T00:00:00-23:59' has a UTC offset out of range (from -15:59 to +15:59)",
        ),
        (
            "2026-01-01T00:00:00+20:00",
            "'2026-01-01T00:00:00+20:00' has a UTC offset out of range (from -15:59 to +15:59)",
        ),
        ("tomorrow", "'tomorrow' is not a time (ISO 8601, now, shift, or an age like 8h)"),
    ],
)
def test_times_postgresql_would_refuse_are_invalid_input(typed: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_time(typed, NOW)
    assert err.value.message == message


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (
            "2026-01-01T00:00:00+15:59",
            datetime(2026, 1, 1, tzinfo=UTC) - timedelta(hours=15, minutes=59),
        ),
        (
            "2026-01-01T00:00:00-15:59",
            datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=15, minutes=59),
        ),
        ("1900-01-02T00:00Z", datetime(1900, 1, 2, tzinfo=UTC)),
        ("8h", NOW - timedelta(hours=8)),
        ("now", NOW),
    ],
)
def test_times_at_the_edges_are_taken(typed: str, expected: datetime) -> None:
    assert parse_time(typed, NOW) == expected
