"""Settings from flags and the environment, gathered once into one frozen object.

Precedence: command-line flag, then environment variable, then the default.
  DISPATCH_DATABASE_URL  a shared PostgreSQL server (else the embedded one under DISPATCH_DATA_DIR)
  DISPATCH_DATA_DIR      where the embedded server and the log live
  DISPATCH_USER          the operator (else the OS user name)
  DISPATCH_DESK          the desk name written to the audit log
  DISPATCH_LOG_FILE      where logs go (never the terminal)
  DISPATCH_DISPOSITIONS  what a call's close may say happened, separated by ";" (default: NEMSIS
                         eDisposition wording: treated and transported; treated and released; …)
  DISPATCH_REOPEN_HOURS  how long after its end a call may be re-opened (default 24)
  DISPATCH_STALE_POSITION_MINUTES  a unit's reported position older than this is stale: listed
                         as such, and its ETA said to be a guess (default 10)
The desk also reads:
  DISPATCH_AGING         pending-call aging thresholds in seconds, e.g. "P1=60,P2=300,P3=900,P4=1800"
  DISPATCH_STATUS_COLORS status colours, e.g. "EN_ROUTE=yellow,ON_SCENE=#ff8800" (text stays too)
  DISPATCH_POLL_SECONDS  how often to poll when LISTEN is unavailable (default 2)
  DISPATCH_LISTEN        "0" to poll instead of LISTEN/NOTIFY
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from rich.errors import StyleSyntaxError
from rich.style import Style

from dispatch_tui.db.embedded import default_data_dir
from dispatch_tui.rules import norms
from dispatch_tui.rules.duplicates import METRES, MINUTES, DuplicateRule
from dispatch_tui.rules.validation import DISPOSITIONS


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    data_dir: Path
    operator: str
    desk: str
    log_file: Path
    dispositions: tuple[str, ...] = DISPOSITIONS
    reopen_hours: float = 24.0
    # Where live screens and the alerter listen, when not the database's URL (past a pooler).
    listen_url: str | None = None
    # Open calls this near and this recent are a new call's possible duplicates.
    duplicates: DuplicateRule = field(default_factory=DuplicateRule)
    # A unit's position older than this is stale (DISPATCH_STALE_POSITION_MINUTES).
    stale_position_seconds: int = norms.STALE_POSITION_SECONDS

    @classmethod
    def load(
        cls,
        *,
        database_url: str | None = None,
        operator: str | None = None,
        desk: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Settings:
        environ = os.environ if env is None else env
        data_dir = (
            Path(environ["DISPATCH_DATA_DIR"])
            if environ.get("DISPATCH_DATA_DIR")
            else default_data_dir()
        )
        return cls(
            database_url=database_url or environ.get("DISPATCH_DATABASE_URL") or None,
            data_dir=data_dir,
            operator=operator or environ.get("DISPATCH_USER") or _os_user(),
            desk=desk or environ.get("DISPATCH_DESK") or f"{socket.gethostname()}",
            log_file=Path(environ.get("DISPATCH_LOG_FILE") or data_dir / "dispatch-tui.log"),
            dispositions=dispositions(environ),
            reopen_hours=_hours(environ.get("DISPATCH_REOPEN_HOURS", ""), 24.0),
            listen_url=environ.get("DISPATCH_LISTEN_URL") or None,
            duplicates=DuplicateRule(
                metres=_whole(environ.get("DISPATCH_DUPLICATE_METRES", ""), METRES, 10_000),
                minutes=_whole(environ.get("DISPATCH_DUPLICATE_MINUTES", ""), MINUTES, 24 * 60),
            ),
            stale_position_seconds=stale_position_seconds(environ),
        )


def dispositions(environ: dict[str, str] | os._Environ[str]) -> tuple[str, ...]:
    """The centre's dispositions (DISPATCH_DISPOSITIONS, ";" between them), else NEMSIS's."""
    own = tuple(" ".join(d.split()) for d in environ.get("DISPATCH_DISPOSITIONS", "").split(";"))
    own = tuple(d for d in own if d and d.isprintable())
    return own or DISPOSITIONS


def stale_position_seconds(environ: dict[str, str] | os._Environ[str]) -> int:
    """How old a unit's position may be before it is stale, in seconds: whole minutes 1–1440
    from DISPATCH_STALE_POSITION_MINUTES, else 10 (a bad setting must not stop a desk)."""
    text = environ.get("DISPATCH_STALE_POSITION_MINUTES", "").strip()
    minutes = int(text) if text.isdigit() and 0 < int(text) <= 24 * 60 else 0
    return minutes * 60 if minutes else norms.STALE_POSITION_SECONDS


def _whole(text: str, default: int, most: int) -> int:
    """A whole number 0–`most` (0: that check is off), else the default."""
    value = text.strip()
    return int(value) if value.isdigit() and int(value) <= most else default


def _hours(text: str, default: float) -> float:
    try:
        hours = float(text)
    except ValueError:
        return default
    return hours if 0 < hours <= 24 * 366 else default


# Pending-call aging by priority (a commercial CAD console's example, DOMAIN.md).
DEFAULT_AGING = {1: 60, 2: 300, 3: 900, 4: 1800}

# Vendors disagree on status colours: these are defaults, and every status is shown as text too.
DEFAULT_STATUS_STYLES = {
    "AVAILABLE": "green",
    "EN_ROUTE": "yellow",
    "ON_SCENE": "dark_orange",
    "TRANSPORTING": "magenta",
    "AT_HOSPITAL": "cyan",
    "OUT_OF_SERVICE": "bright_black",
    "RECEIVED": "red",
    "DISPATCHED": "yellow",
    "CLOSED": "bright_black",
    "CANCELLED": "bright_black",
    "OPEN": "green",
    "DIVERSION": "yellow",
}


@dataclass(frozen=True, slots=True)
class DeskOptions:
    """Switches of the live desk; tests turn the live parts off or speed them up."""

    aging_seconds: dict[int, int]
    status_styles: dict[str, str]
    poll_seconds: float = 2.0
    listen: bool = True
    clock: bool = True
    dispositions: tuple[str, ...] = DISPOSITIONS  # what the close key offers
    # Seconds a crew has to acknowledge a dispatch before it is a timer (DISPATCH_ACK_SECONDS).
    ack_seconds: int = norms.ACK_SECONDS
    # A unit's position older than this is stale (DISPATCH_STALE_POSITION_MINUTES).
    stale_position_seconds: int = norms.STALE_POSITION_SECONDS

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> DeskOptions:
        environ = os.environ if env is None else env
        aging = dict(DEFAULT_AGING)
        for key, value in _pairs(environ.get("DISPATCH_AGING", "")):
            priority, seconds = key.upper().removeprefix("P"), value
            if (
                priority.isdigit()
                and seconds.isdigit()
                and int(priority) in aging
                and int(seconds) > 0
            ):
                aging[int(priority)] = int(seconds)
        styles = dict(DEFAULT_STATUS_STYLES)
        for key, value in _pairs(environ.get("DISPATCH_STATUS_COLORS", "")):
            try:
                Style.parse(value)
            except StyleSyntaxError:
                continue  # an unknown colour keeps the default rather than breaking the desk
            styles[key.upper()] = value
        try:
            poll = max(0.2, float(environ.get("DISPATCH_POLL_SECONDS", "2")))
        except ValueError:
            poll = 2.0
        ack = environ.get("DISPATCH_ACK_SECONDS", "").strip()
        ack_seconds = int(ack) if ack.isdigit() and 0 < int(ack) <= 3600 else norms.ACK_SECONDS
        return cls(
            aging_seconds=aging,
            status_styles=styles,
            poll_seconds=poll,
            listen=environ.get("DISPATCH_LISTEN", "1") != "0",
            dispositions=dispositions(environ),
            ack_seconds=ack_seconds,
            stale_position_seconds=stale_position_seconds(environ),
        )


def _pairs(text: str) -> list[tuple[str, str]]:
    """Parse "A=1,B=2"; malformed pieces are ignored (a bad setting must not stop a desk)."""
    pairs = []
    for piece in text.split(","):
        key, sep, value = piece.partition("=")
        if sep and key.strip() and value.strip():
            pairs.append((key.strip(), value.strip()))
    return pairs


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
