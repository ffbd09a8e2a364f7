"""The log file (cli/logfile.py): no password in any spelling reaches it, and it is private."""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from dispatch_tui.cli.logfile import MaskingFormatter, mask, private_file_handler, secrets_of


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("--db=postgresql://u:hunter2@db/x", "--db=postgresql://u:***@db/x"),
        ("postgres://u:hunter2@db:5432/x", "postgres://u:***@db:5432/x"),
        ("postgresql+psycopg://:hunter2@db/x", "postgresql+psycopg://:***@db/x"),
        (
            "['--db', 'postgresql://u:hun@ter2@db/x', 'show']",
            "['--db', 'postgresql://u:***@db/x', 'show']",
        ),
        (
            "postgresql://db/x?user=u&password=hunter2&sslmode=require",
            "postgresql://db/x?user=u&password=***&sslmode=require",
        ),
        ("host=db password='hunter 2' dbname=x", "host=db password=*** dbname=x"),
        ("PGPASSWORD=hunter2 psql", "PGPASSWORD=*** psql"),
        (
            "postgresql://u@db/x and https://example.com/a",
            "postgresql://u@db/x and https://example.com/a",
        ),
    ],
)
def test_passwords_are_masked_in_every_spelling(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_a_known_password_is_masked_wherever_it_appears() -> None:
    secrets = secrets_of(["postgresql://u:my%20secret@db/x", None, "postgresql://v@db/y"])
    assert secrets == ["my%20secret", "my secret"]
    assert mask("auth failed for 'my secret'", secrets) == "auth failed for '***'"


def test_a_short_password_is_masked_only_in_its_url() -> None:
    # Masking 'ab' everywhere would turn every line to noise.
    assert secrets_of(["postgresql://u:ab@db/x"]) == []
    assert mask("postgresql://u:ab@db/x about a tab") == "postgresql://u:***@db/x about a tab"
    assert secrets_of(["postgresql://u:x@[::1/db"]) == []  # unparseable: the patterns remain


def test_the_formatter_masks_the_message_and_the_traceback() -> None:
    formatter = MaskingFormatter("%(message)s", secrets_of(["postgresql://u:hunter2@db/x"]))
    try:
        raise RuntimeError("could not connect with hunter2")
    except RuntimeError:
        record = logging.LogRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "in %r",
            (["--db=postgresql://u:hunter2@db/x"],),
            exc_info=sys.exc_info(),
        )
    text = formatter.format(record)
    assert "hunter2" not in text and "RuntimeError: could not connect with ***" in text


def test_the_file_is_created_0600_in_directories_made_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        handler = private_file_handler(tmp_path / "a" / "b" / "dispatch-tui.log")
    finally:
        os.umask(old)
    handler.close()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "a", tmp_path / "a" / "b")}
    assert modes == {"a": 0o700, "b": 0o700}
    assert stat.S_IMODE((tmp_path / "a" / "b" / "dispatch-tui.log").stat().st_mode) == 0o600


def test_an_existing_log_of_ours_is_narrowed_and_its_directory_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    log = tmp_path / "dispatch-tui.log"
    log.write_text("an earlier line\n")
    log.chmod(0o644)
    private_file_handler(log).close()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert log.read_text() == "an earlier line\n"
