"""One grammar for the CLI and the desk's command bar: a line of words into a typed command.

The verbs (`dispatch C-1042 M12`, `unit status M12 on_scene`, ...) are argparse sub-commands; each
sets `build`, which turns its parsed arguments into the typed command of `rules/commands.py`. The
CLI and the bar parse with the same verbs and run the same commands, so a verb added here works in
both places. Dispatcher shorthands as CAD users type them (`d C-1042
M12`, `os M12`, `tx M12 MERCY`, `av M12`; TicketsCAD's aliases) are rewritten to those verbs
before parsing. A parse error is an `InvalidInput`, never an exit.
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
from collections.abc import Sequence
from typing import Any, NoReturn

from dispatch_tui.rules import commands
from dispatch_tui.rules.enums import HospitalStatus, UnitStatus
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.validation import CallChanges, CallIntake

# shorthand -> the canonical words it stands for; the rest of the line follows.
STATUS_SHORTHANDS: dict[str, str] = {
    "en": "en_route",
    "enr": "en_route",
    "os": "on_scene",
    "ar": "on_scene",
    "tx": "transporting",
    "t": "transporting",
    "ah": "at_hospital",
    "af": "at_hospital",
    "av": "available",
    "f": "available",
    "oos": "out_of_service",
}
# Every word that names a unit status: the shorthands, each status's own name, and its name
# without the underscore (`onscene`).
STATUS_WORDS: dict[str, str] = {
    **{k: v.upper() for k, v in STATUS_SHORTHANDS.items()},
    **{s.value.lower(): s.value for s in UnitStatus},
    **{s.value.lower().replace("_", ""): s.value for s in UnitStatus},
}
# The verbs as typed first (the bar completes these; an unknown word lists them).
VERBS = (
    "dispatch",
    "divert",
    "queue",
    "unqueue",
    "call",
    "unit",
    "hospital",
    "recommend",
    "show",
    "audit",
    "find",
    "note",
    "premise",
    "gis",
)
VERB_SHORTHANDS: dict[str, list[str]] = {
    "d": ["dispatch"],
    "disp": ["dispatch"],
    "rec": ["recommend"],
    "cx": ["unit", "cancel"],
    "loc": ["unit", "locate"],
    "ack": ["unit", "ack"],
    "hs": ["hospital", "status"],
    "new": ["call", "new"],
    "note": ["call", "note"],
    "update": ["call", "update"],
    "reopen": ["call", "reopen"],
    "geocode": ["gis", "geocode"],
    "geo": ["gis", "geocode"],
}


# A word that is a negative number, not an option: every spelling float() takes (`-83.`,
# `-8.3e1`, `-inf`), and a decimal comma (`-82,99`) so that validation says what is wrong with
# it. argparse's own test knows only `-83` and `-83.5`, and took `unit locate M1 40 -83.` for
# a missing longitude.
_NEGATIVE_NUMBER = re.compile(
    r"^-(?:(?:\d[\d_]*(?:[.,][\d_]*)?|[.,]\d[\d_]*)(?:e[-+]?\d+)?|inf(?:inity)?|nan)$", re.I
)


class GrammarParser(argparse.ArgumentParser):
    """argparse that raises `InvalidInput` instead of printing usage and exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # argparse's private hook for this test; no option of ours looks like a number.
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument command: invalid choice:"):
            word = message.split("'")[1] if "'" in message else "?"
            tries = ", ".join(["d", "en", "os", "tx", "ah", "av", "oos", "cx", *VERBS[1:5]])
            raise InvalidInput(
                f"unknown command '{word[:24]}'; try {tries} (-h for help on the CLI)"
            )
        where = self.prog.removeprefix("dispatch-tui").strip()
        raise InvalidInput(f"{where}: {message}" if where else message)


def _status(value: str) -> str:
    word = value.strip().lower().replace("-", "_").replace(" ", "_")
    if word not in STATUS_WORDS:
        names = ", ".join(s.value.lower() for s in UnitStatus)
        raise argparse.ArgumentTypeError(f"'{value[:24]}' is not a unit status ({names})")
    return STATUS_WORDS[word]


# Options that may stand before the verb on the CLI, and whether they take a value.
_LEADING_OPTIONS = {
    "--db": True,
    "--as": True,
    "--request-id": True,
    "--json": False,
    "--version": False,
    "-h": False,
    "--help": False,
}


def expand(tokens: Sequence[str]) -> list[str]:
    """Rewrite a dispatcher shorthand into the canonical verb words (after any leading options)."""
    i = 0
    while i < len(tokens) and (width := _leading_option(tokens[i])):
        i += width
    if i >= len(tokens):
        return list(tokens)
    return list(tokens[:i]) + _expand_verb(tokens[i:])


def _leading_option(token: str) -> int:
    """How many words a leading option takes up, as argparse reads it: `--db URL` two,
    `--db=URL` one, an abbreviation (`--js`) like the option itself; 0 when it is no option."""
    name, equals, _ = token.partition("=")
    if name not in _LEADING_OPTIONS and name.startswith("--"):
        matches = [option for option in _LEADING_OPTIONS if option.startswith(name)]
        name = matches[0] if len(matches) == 1 else name
    if name not in _LEADING_OPTIONS or (equals and not _LEADING_OPTIONS[name]):
        return 0
    return 2 if _LEADING_OPTIONS[name] and not equals else 1


# Verbs whose second word is a verb too (`call new`, `server start`).
_GROUPS = ("call", "unit", "hospital", "server", "db", "demo", "admin", "gis")


def _expand_verb(tokens: Sequence[str]) -> list[str]:
    head, rest = tokens[0].lower(), list(tokens[1:])
    if head in STATUS_SHORTHANDS and not rest:
        example = "tx M12 MERCY" if head in ("tx", "t") else f"{head} M12"
        raise InvalidInput(f"{head} needs a unit: {example}")
    if head in STATUS_SHORTHANDS and rest:
        # `tx M12 MERCY` -> unit status M12 transporting --hospital MERCY
        unit, extra = rest[0], rest[1:]
        words = ["unit", "status", unit, STATUS_SHORTHANDS[head]]
        if head in ("tx", "t") and extra and not extra[0].startswith("-"):
            words += ["--hospital", extra[0]]
            extra = extra[1:]
        return words + extra
    if head in VERB_SHORTHANDS:
        return VERB_SHORTHANDS[head] + rest
    if head.startswith("-"):
        return [tokens[0], *rest]
    # Verbs in any case, as the shorthands are (caps lock on at the bar: `SHOW CALLS`).
    if head in _GROUPS and rest and not rest[0].startswith("-"):
        rest[0] = rest[0].lower()
    return [head, *rest]


def _new_call(ns: argparse.Namespace) -> commands.NewCall | commands.AttachCaller:
    intake = CallIntake(
        nature=ns.nature,
        location=ns.location,
        place=ns.place,
        priority=ns.priority,
        determinant=ns.determinant,
        caller_name=ns.caller,
        caller_phone=ns.phone,
        notes=ns.notes,
        lat=ns.lat,
        lon=ns.lon,
    )
    if ns.attach:
        return commands.AttachCaller(ns.attach, intake)
    return commands.NewCall(intake, new_anyway=ns.new_anyway)


def add_verbs(sub: Any, common: Sequence[argparse.ArgumentParser] = ()) -> dict[str, Any]:
    """Add the dispatch verbs to a sub-parser collection (the CLI's, or the command bar's).
    Returns the groups the CLI adds verbs of its own to (`gis`: `gis import` reads a file,
    which the bar does not)."""
    parents = list(common)

    def verb(parent: Any, name: str, help_text: str, **defaults: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(
            name, help=help_text, description=help_text, parents=parents
        )
        parser.set_defaults(**defaults)
        return parser

    call = sub.add_parser(
        "call", help="take, show, note, update, cancel, close and re-open calls"
    ).add_subparsers(
        dest="call_verb",
        required=True,
        metavar="{new,show,note,update,cancel,close,reopen}",
    )
    new = verb(
        call,
        "new",
        "take a new call",
        verb="call.new",
        build=_new_call,
    )
    new.add_argument("nature", help="what happened, e.g. 'chest pain'")
    new.add_argument(
        "-p", "--priority", help="1 (most urgent) to 4; derived from --determinant if omitted"
    )
    new.add_argument("--determinant", default="", help="MPDS determinant, e.g. 10-D-1")
    new.add_argument("-l", "--location", default="", help="address or description of the scene")
    new.add_argument("--place", default="", help="a named place (looked up; gives coordinates)")
    new.add_argument("--lat", help="latitude of the scene")
    new.add_argument("--lon", help="longitude of the scene")
    new.add_argument("--caller", default="", help="caller's name")
    new.add_argument("--phone", default="", help="caller's phone number")
    new.add_argument("--notes", default="", help="free-text notes")
    same = new.add_mutually_exclusive_group()
    same.add_argument(
        "--new-anyway",
        action="store_true",
        help="take it although open calls near it may be the same incident (audited)",
    )
    same.add_argument(
        "--attach",
        metavar="CALL",
        help="not a new call: add this caller to that open call's narrative",
    )
    show = verb(
        call,
        "show",
        "one call's record: every field, its units and times, its timeline",
        verb="call.show",
        build=lambda ns: commands.ShowCall(ns.call),
    )
    show.add_argument("call")
    note = verb(
        call,
        "note",
        "add a note to a call's narrative",
        verb="call.note",
        build=lambda ns: commands.AddNote(ns.call, " ".join(ns.text), ns.corrects),
    )
    note.add_argument("call")
    note.add_argument("text", nargs="+", help="the note (the rest of the line)")
    note.add_argument("--corrects", metavar="N", help="the narrative entry this one corrects")
    update = verb(
        call,
        "update",
        "change an open call's priority, determinant, nature, location or caller",
        verb="call.update",
        build=lambda ns: commands.UpdateCall(
            ns.call,
            CallChanges(
                priority=ns.priority,
                determinant=ns.determinant,
                nature=ns.nature,
                location=ns.location,
                place=ns.place,
                lat=ns.lat,
                lon=ns.lon,
                caller_name=ns.caller,
                caller_phone=ns.phone,
            ),
        ),
    )
    update.add_argument("call")
    update.add_argument("-p", "--priority", help="1 (most urgent) to 4")
    update.add_argument("--determinant", help="MPDS determinant (brings its priority)")
    update.add_argument("--nature", help="what happened")
    where = update.add_mutually_exclusive_group()
    where.add_argument("-l", "--location", help="address or description of the scene")
    where.add_argument("--place", help="a named place (gives location and coordinates)")
    update.add_argument("--lat", help="latitude of the scene")
    update.add_argument("--lon", help="longitude of the scene")
    update.add_argument("--caller", help="caller's name")
    update.add_argument("--phone", help="caller's phone number")
    reopen = verb(
        call,
        "reopen",
        "re-open a call closed or cancelled in the last 24 h: it is pending again",
        verb="call.reopen",
        build=lambda ns: commands.ReopenCall(ns.call, ns.reason),
    )
    reopen.add_argument("call")
    reopen.add_argument("--reason", required=True, help="why it is re-opened")
    cancel = verb(
        call,
        "cancel",
        "cancel a call and release its units",
        verb="call.cancel",
        build=lambda ns: commands.CancelCall(ns.call, ns.reason),
    )
    cancel.add_argument("call")
    cancel.add_argument("--reason", default="", help="why (kept in the audit log)")
    close = verb(
        call,
        "close",
        "close a call a unit has reached",
        verb="call.close",
        build=lambda ns: commands.CloseCall(ns.call, ns.disposition),
    )
    close.add_argument("call")
    close.add_argument(
        "--disposition",
        default="",
        help="what happened (required): treated and transported, treated and released, "
        "patient refused care, no patient found, dead at scene, cancelled en route, "
        "standby only … (or the start of one)",
    )

    dispatch = verb(
        sub,
        "dispatch",
        "send units to a call",
        verb="dispatch",
        build=lambda ns: commands.Dispatch(
            ns.call,
            tuple(ns.units),
            paramedic=ns.paramedic,
            hospital=ns.hospital,
            divert_override=ns.divert_override,
            add=ns.add,
        ),
    )
    dispatch.add_argument("call")
    dispatch.add_argument("units", nargs="+", metavar="UNIT")
    dispatch.add_argument("--paramedic", help="user name of the paramedic going with the unit")
    dispatch.add_argument("--hospital", help="destination hospital code")
    dispatch.add_argument(
        "--add", action="store_true", help="send more units to a call that has some"
    )
    dispatch.add_argument(
        "--divert-override", action="store_true", help="send to a hospital on diversion"
    )

    divert = verb(
        sub,
        "divert",
        "take a unit en route (or at the hospital) from its call to another",
        verb="divert",
        build=lambda ns: commands.Divert(ns.unit, ns.call, ns.reason),
    )
    divert.add_argument("unit")
    divert.add_argument("call")
    divert.add_argument("--reason", default="", help="why (kept in the audit and the narrative)")

    queue = verb(
        sub,
        "queue",
        "line up a busy unit's next call: it goes there when it clears",
        verb="queue",
        build=lambda ns: commands.Queue(ns.unit, ns.call),
    )
    queue.add_argument("unit")
    queue.add_argument("call")
    unqueue = verb(
        sub,
        "unqueue",
        "take back a unit's lined-up next call",
        verb="unqueue",
        build=lambda ns: commands.Unqueue(ns.unit),
    )
    unqueue.add_argument("unit")

    unit = sub.add_parser("unit", help="unit status, position and cancel").add_subparsers(
        dest="unit_verb", required=True, metavar="{status,ack,locate,cancel}"
    )
    status = verb(
        unit,
        "status",
        "change a unit's status",
        verb="unit.status",
        build=lambda ns: commands.SetUnitStatus(
            ns.unit,
            ns.status,
            hospital=ns.hospital,
            divert_override=ns.divert_override,
            reason=ns.reason,
        ),
    )
    status.add_argument("unit")
    status.add_argument(
        "status",
        type=_status,
        help=f"{', '.join(s.value.lower() for s in UnitStatus)} "
        f"(or {', '.join(sorted(set(STATUS_SHORTHANDS), key=len))})",
    )
    status.add_argument("--hospital", help="destination, when transporting")
    status.add_argument(
        "--divert-override",
        action="store_true",
        help="transport to a hospital on diversion",
    )
    status.add_argument("--reason", default="", help="why, e.g. out of service: flat tyre")
    ack = verb(
        unit,
        "ack",
        "the crew has its dispatch: record the acknowledgement (by the server's clock)",
        verb="unit.ack",
        build=lambda ns: commands.Acknowledge(ns.unit),
    )
    ack.add_argument("unit")
    locate = verb(
        unit,
        "locate",
        "record a unit's position",
        verb="unit.locate",
        build=lambda ns: commands.LocateUnit(ns.unit, ns.lat, ns.lon),
    )
    locate.add_argument("unit")
    locate.add_argument("lat")
    locate.add_argument("lon")
    ucancel = verb(
        unit,
        "cancel",
        "cancel a unit's assignment before it arrives",
        verb="unit.cancel",
        build=lambda ns: commands.CancelUnit(ns.unit, ns.reason),
    )
    ucancel.add_argument("unit")
    ucancel.add_argument("--reason", default="")

    premise = sub.add_parser(
        "premise", help="hazard notes on an address (what a crew must know)"
    ).add_subparsers(dest="premise_verb", required=True, metavar="{add,retire,list}")
    padd = verb(
        premise,
        "add",
        "a hazard note on an address, shown loudly with every call there (supervisors)",
        verb="premise.add",
        build=lambda ns: commands.AddPremise(ns.address, " ".join(ns.note), ns.until),
    )
    padd.add_argument("address", help="as a call's location is typed, e.g. '12 N Main St'")
    padd.add_argument("note", nargs="+", help="e.g. dog on premises; oxygen in use")
    padd.add_argument("--until", help="the last day it holds, e.g. 2026-12-24")
    pretire = verb(
        premise,
        "retire",
        "a hazard note no longer in force (kept in the history)",
        verb="premise.retire",
        build=lambda ns: commands.RetirePremise(ns.note_id),
    )
    pretire.add_argument("note_id", metavar="NOTE", help="its number, e.g. 7")
    plist = verb(
        premise,
        "list",
        "the hazard notes in force at an address",
        verb="premise.list",
        build=lambda ns: commands.Premises(ns.address),
    )
    plist.add_argument("address")

    hospital = sub.add_parser("hospital", help="hospital status and beds").add_subparsers(
        dest="hospital_verb", required=True, metavar="{status}"
    )
    hstatus = verb(
        hospital,
        "status",
        "set a hospital's status and/or beds",
        verb="hospital.status",
        build=lambda ns: commands.SetHospitalStatus(ns.hospital, ns.status, ns.beds),
    )
    hstatus.add_argument("hospital")
    hstatus.add_argument(
        "status", nargs="?", help=", ".join(s.value.lower() for s in HospitalStatus)
    )
    hstatus.add_argument("--beds", help="beds available")

    rec = verb(
        sub,
        "recommend",
        "rank available units for a call",
        verb="recommend",
        build=lambda ns: commands.Recommend(ns.call, ns.limit),
    )
    rec.add_argument("call")
    rec.add_argument("-n", "--limit", type=int, default=5)

    show_all = verb(
        sub,
        "show",
        "list calls, units, hospitals or places",
        verb="show",
        build=lambda ns: commands.Show(ns.what, ns.all, ns.limit),
    )
    show_all.add_argument("what", type=str.lower, choices=["calls", "units", "hospitals", "places"])
    show_all.add_argument("--all", action="store_true", help="calls: include closed and cancelled")
    show_all.add_argument(
        "-n",
        "--limit",
        type=int,
        help="calls: the newest N (default: every open call; with --all the newest 500)",
    )

    find = verb(
        sub,
        "find",
        "find calls by number, address, caller or phone, and units by code",
        verb="find",
        build=lambda ns: commands.Find(" ".join(ns.text), ns.days, ns.limit),
    )
    find.add_argument("text", nargs="+", help="what to look for")
    find.add_argument(
        "--days", type=float, default=3.0, help="ended calls received in the last N days (3)"
    )
    find.add_argument("-n", "--limit", type=int, default=50, help="at most N calls (50)")

    audit = verb(
        sub,
        "audit",
        "the audit log, newest last",
        verb="audit",
        build=lambda ns: commands.Audit(ns.call, ns.limit),
    )
    audit.add_argument("--call", help="only this call")
    audit.add_argument("-n", "--limit", type=int, default=50)

    gis = sub.add_parser(
        "gis", help="the gazetteer: the agency's own addresses and streets"
    ).add_subparsers(dest="gis_verb", required=True, metavar="{geocode,import}")
    geocode = verb(
        gis,
        "geocode",
        "the places an address may be, best first, with scores and positions",
        verb="gis.geocode",
        build=lambda ns: commands.Geocode(" ".join(ns.text), ns.limit),
    )
    geocode.add_argument("text", nargs="+", help="an address as typed, e.g. 12 N Main St")
    geocode.add_argument("-n", "--limit", type=int, default=5, help="at most N places (5)")
    return {"gis": gis}


def bar_parser() -> GrammarParser:
    """The command bar's parser: the dispatch verbs, no help flags (nothing may print)."""
    parser = GrammarParser(prog="dispatch-tui", add_help=False)
    add_verbs(parser.add_subparsers(dest="command", required=True, parser_class=_NoHelp))
    return parser


class _NoHelp(GrammarParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)


def command_of(ns: argparse.Namespace) -> commands.Command | None:
    """The typed command a parsed verb stands for (None for the CLI's own verbs: desk, server…)."""
    build = getattr(ns, "build", None)
    if build is None:
        return None
    command: commands.Command = build(ns)
    return command


def parse_line(line: str) -> commands.Command:
    """Parse one command-bar line (shell-like quoting) into the command the CLI would build.

    A leading `:` is the key that opens the bar, typed again into a bar already open (after
    one command the bar stays open for the next): it is not part of the command."""
    try:
        tokens = shlex.split(line.lstrip().removeprefix(":"))
    except ValueError as err:
        raise InvalidInput(f"cannot read that line: {err}") from None
    if not tokens:
        raise InvalidInput("type a command, e.g. d C-1042 M12")
    command = command_of(_bar().parse_args(expand(tokens)))
    assert command is not None, "every verb of the bar builds a command"
    return command


@functools.cache
def _bar() -> GrammarParser:
    """The bar's parser, built once when first used (the CLI's verbs never need it)."""
    return bar_parser()
