"""The unit tier never reaches a database.

Every database fixture of `tests/conftest.py` (`database_url`, `engine`, `sessions`, `world`,
`count`, `db_env`) stands on `server_url`. Overriding it here makes a unit test that asks for any
of them fail at once, before a server is started or DISPATCH_TEST_DATABASE_URL is read, with a
message saying where the test belongs.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def server_url() -> str:
    pytest.fail(
        "a unit test asked for the database; tests/unit is for the pure rules only"
        " (a test that needs PostgreSQL belongs in tests/)",
        pytrace=False,
    )
