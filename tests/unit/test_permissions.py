"""Who may do what: the permission table as each role meets it, and the one line a refusal says.
(tests/test_roles.py and tests/test_lifecycle.py check that the service enforces it.)"""

from __future__ import annotations

import pytest

from dispatch_tui.rules.errors import ExitCode, Forbidden
from dispatch_tui.rules.permissions import PERMISSIONS, article, check, crew_refusal, may

ACTIONS = [
    "create_call",
    "dispatch",
    "unit_status",
    "locate_unit",
    "acknowledge",
    "cancel",
    "close_call",
    "update_call",
    "reopen_call",
    "note",
    "hospital_status",
    "premise",
    "add_operator",
    "crew_terminal",
]
# What each role may do, written out by hand (a paramedic here is not on the unit in question).
ALLOWED = {
    "dispatcher": {
        "create_call",
        "dispatch",
        "unit_status",
        "locate_unit",
        "acknowledge",
        "cancel",
        "close_call",
        "update_call",
        "reopen_call",
        "note",
    },
    "paramedic": set(),
    "supervisor": {"hospital_status", "premise", "add_operator", "note"},
    "admin": {"hospital_status", "premise", "add_operator", "note"},
}


def test_the_table_names_every_action() -> None:
    assert sorted(PERMISSIONS) == sorted(ACTIONS)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", list(ALLOWED))
def test_each_role_may_do_its_own_work_only(role: str, action: str) -> None:
    assert may(role, action) is (action in ALLOWED[role])


@pytest.mark.parametrize("action", ACTIONS)
def test_a_paramedic_may_work_their_own_unit_and_its_call_only(action: str) -> None:
    # A note: on the call their unit is on; the crew terminal: their unit's.
    own = {"unit_status", "locate_unit", "acknowledge", "note", "crew_terminal"}
    assert may("paramedic", action, own_unit=True) is (action in own)


@pytest.mark.parametrize("role", ["dispatcher", "supervisor", "admin"])
def test_crewing_a_unit_gives_no_one_else_its_status_key_or_terminal(role: str) -> None:
    assert not may(role, "crew_terminal", own_unit=True)
    if role != "dispatcher":
        assert not may(role, "unit_status", own_unit=True)
        assert not may(role, "locate_unit", own_unit=True)


@pytest.mark.parametrize(
    ("who", "role", "crews", "message"),
    [
        ("dave", "paramedic", "M3", "dave crews M3, not M1; open the crew terminal of M3 instead"),
        (
            "ivan",
            "paramedic",
            None,
            "ivan is a paramedic, on no unit; only the paramedic crewing M1 may open its crew "
            "terminal",
        ),
        (
            "alice",
            "dispatcher",
            None,
            "alice is a dispatcher; only the paramedic crewing M1 may open its crew terminal",
        ),
    ],
)
def test_the_crew_terminal_refusal_says_whose_it_is(
    who: str, role: str, crews: str | None, message: str
) -> None:
    refused = crew_refusal(who, role, "M1", crews)
    assert (refused.message, refused.exit_code) == (message, ExitCode.FORBIDDEN)


def test_an_unknown_role_is_never_allowed() -> None:
    # Not a role at all: an error, never a quiet yes.
    with pytest.raises(ValueError, match="janitor"):
        may("janitor", "dispatch")


def test_check_lets_an_allowed_operator_through() -> None:
    assert check("alice", "dispatcher", "dispatch") is None
    assert check("carol", "paramedic", "unit_status", own_unit=True) is None
    assert check("grace", "supervisor", "add_operator") is None


@pytest.mark.parametrize(
    ("who", "role", "action", "message"),
    [
        ("carol", "paramedic", "dispatch", "carol is a paramedic; only a dispatcher may do that"),
        (
            "alice",
            "dispatcher",
            "hospital_status",
            "alice is a dispatcher; only an admin or a supervisor may do that",
        ),
        ("admin", "admin", "close_call", "admin is an admin; only a dispatcher may do that"),
    ],
)
def test_check_refuses_naming_who_may(who: str, role: str, action: str, message: str) -> None:
    with pytest.raises(Forbidden) as refused:
        check(who, role, action)
    assert refused.value.message == message
    assert (refused.value.exit_code, refused.value.kind) == (ExitCode.FORBIDDEN, "forbidden")


def test_a_paramedic_on_another_unit_is_refused() -> None:
    with pytest.raises(Forbidden, match=r"^dave is a paramedic; only a dispatcher may do that$"):
        check("dave", "paramedic", "unit_status", own_unit=False)


@pytest.mark.parametrize(
    ("word", "phrase"),
    [("admin", "an admin"), ("operator", "an operator"), ("paramedic", "a paramedic")],
)
def test_article(word: str, phrase: str) -> None:
    assert article(word) == phrase
