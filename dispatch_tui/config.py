"""Settings from flags and the environment, gathered once into one frozen object.

Precedence: command-line flag, then environment variable, then the default.
  DISPATCH_DATABASE_URL  a shared PostgreSQL server (else the embedded one under DISPATCH_DATA_DIR)
  DISPATCH_DATA_DIR      where the embedded server and the log live
  DISPATCH_USER          the operator (else the OS user name)
  DISPATCH_DESK          the desk name written to the audit log
  DISPATCH_LOG_FILE      where logs go (never the terminal)
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from dispatch_tui.db.embedded import default_data_dir


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    data_dir: Path
    operator: str
    desk: str
    log_file: Path

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
        )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
