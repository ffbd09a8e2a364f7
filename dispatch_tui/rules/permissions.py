"""Who may do what: one table, read by the service (which refuses) and the desk (which hides).

A paramedic may change the status and position of the unit they crew, acknowledge its dispatch,
add notes to the narrative of the call it is on, and open its crew terminal; nothing else.
"""

from __future__ import annotations

from dispatch_tui.rules.enums import Role
from dispatch_tui.rules.errors import Forbidden

PERMISSIONS: dict[str, frozenset[Role]] = {
    "create_call": frozenset({Role.DISPATCHER}),
    "dispatch": frozenset({Role.DISPATCHER}),
    "unit_status": frozenset({Role.DISPATCHER}),  # and the paramedic crewing that unit
    "locate_unit": frozenset({Role.DISPATCHER}),  # and the paramedic crewing that unit
    # The crew's acknowledgement of a dispatch; a dispatcher records one heard by radio.
    "acknowledge": frozenset({Role.DISPATCHER}),  # and the paramedic crewing that unit
    "cancel": frozenset({Role.DISPATCHER}),
    "close_call": frozenset({Role.DISPATCHER}),
    "update_call": frozenset({Role.DISPATCHER}),
    "reopen_call": frozenset({Role.DISPATCHER}),
    # A note on a call's narrative: whoever works or oversees the floor, and the crew of a unit
    # on that call (migration 0009 holds a paramedic's login to the same).
    "note": frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN}),
    "hospital_status": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    # Hazard notes on an address (what a crew must know before it arrives).
    "premise": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "add_operator": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    # The crew terminal (`dispatch-tui crew M12`): the paramedic crewing that unit, nobody else.
    "crew_terminal": frozenset(),
}

# What a paramedic may do to the unit they crew (a note: to the call that unit is on).
OWN_UNIT_ACTIONS = frozenset({"unit_status", "locate_unit", "acknowledge", "note", "crew_terminal"})


def own_unit_roles(action: str) -> tuple[Role, ...]:
    """The roles that may do `action` to the unit they crew (beyond those of the table)."""
    return (Role.PARAMEDIC,) if action in OWN_UNIT_ACTIONS else ()


def may(role: str, action: str, *, own_unit: bool = False) -> bool:
    """Whether an operator of this role may do `action` (the desk hides keys it may not use)."""
    if Role(role) in PERMISSIONS[action]:
        return True
    return own_unit and role in own_unit_roles(action)


def check(username: str, role: str, action: str, *, own_unit: bool = False) -> None:
    """Forbidden, naming who may, unless this operator may do `action`."""
    if not may(role, action, own_unit=own_unit):
        raise refusal(username, role, action)


def refusal(username: str, role: str, action: str) -> Forbidden:
    """What an operator who may not do `action` is told: who may."""
    allowed = " or ".join(article(r.value) for r in sorted(PERMISSIONS[action]))
    return Forbidden(f"{username} is {article(role)}; only {allowed} may do that")


def crew_refusal(username: str, role: str, unit: str, crews: str | None) -> Forbidden:
    """Why `username` may not open `unit`'s crew terminal: it is its own crew's."""
    if role == Role.PARAMEDIC and crews:
        return Forbidden(
            f"{username} crews {crews}, not {unit}; open the crew terminal of {crews} instead"
        )
    who = f"{username} is {article(role)}" + (", on no unit" if role == Role.PARAMEDIC else "")
    return Forbidden(f"{who}; only the paramedic crewing {unit} may open its crew terminal")


def article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"
