"""The log file: private to its owner, and never a password in it.

A database URL reaches the log in many spellings: `--db URL`, `--db=URL`, a URL anywhere in argv,
a driver's error message, DISPATCH_DATABASE_URL's value. Rather than trusting every call site to
mask what it logs, the file's formatter masks every line it writes, tracebacks included. The file
is created 0600, and any directory made for it 0700: it holds operators' names and call details.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

MASK = "***"

# scheme://user:PASSWORD@host. The password runs to the last '@' of the word, as URL parsers
# read it; masking a little too much is better than a little too little.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)\S*@")
# password=... in a query string or a libpq keyword string (also PGPASSWORD=...).
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'\",;]+)", re.IGNORECASE)
# A password this short, masked wherever it appears, would turn every log line to noise; the
# patterns above still catch it in a URL.
_LITERAL_MIN = 4


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every password in a URL or a `password=` setting, and each of `secrets`,
    replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
    return _KEYWORD_PASSWORD.sub(rf"\g<1>{MASK}", text)


def secrets_of(urls: Iterable[str | None]) -> list[str]:
    """The passwords of these database URLs, as given and percent-decoded, to be masked even
    where no pattern would find them (a password with a blank in it, say); longest first."""
    found: set[str] = set()
    for url in urls:
        if not url:
            continue
        try:
            password = urlsplit(url).password
        except ValueError:  # a malformed URL (a bad port, an unclosed '['): the patterns remain
            password = None
        if password:
            found.update({password, unquote(password)})
    return sorted((s for s in found if len(s) >= _LITERAL_MIN), key=len, reverse=True)


class MaskingFormatter(logging.Formatter):
    """A formatter that masks passwords in the whole record it writes, traceback included."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record), self.secrets)


def private_file_handler(path: Path) -> logging.FileHandler:
    """A handler appending to `path`, created 0600 (an existing file of ours is narrowed to
    0600); missing directories are made 0700. Raises OSError when that cannot be done."""
    _make_private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(fd)
        # An older version left the file 0644. Only a regular file of our own is narrowed:
        # DISPATCH_LOG_FILE may name /dev/null, or a file someone else keeps.
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return logging.FileHandler(path, encoding="utf-8")


def _make_private_dirs(directory: Path) -> None:
    """Make the missing directories of `directory`, each 0700 whatever the umask; directories
    that exist already are left as they are (DISPATCH_LOG_FILE may sit in /tmp)."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for each in reversed(missing):
        try:
            each.mkdir(mode=0o700)
        except FileExistsError:  # another process made it a moment ago
            continue
        each.chmod(0o700)  # mkdir's mode is filtered by the umask
