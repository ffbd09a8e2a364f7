"""Hostile input at every entry point: the command bar's grammar, the service and the CLI.

Property: whatever a dispatcher types (control characters, Rich markup, SQL, huge or exotic text,
NaN and infinite coordinates, unknown codes), the answer is a typed domain error or a correct
result. Never a traceback, never a database error, never a half-written change: every example
compares the database before and after, so a refused action that wrote anything fails here.

DB-backed properties keep to 30-60 examples (the grammar, without a database, gets 300) so the
file stays within about 30 s. `pytest --hypothesis-show-statistics` shows how often each
property reached acceptance and each kind of refusal.
"""

from __future__ import annotations

import operator
import os
import typing
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from dispatch_tui.cli import main
from dispatch_tui.rules import commands, grammar
from dispatch_tui.rules.errors import (
    Conflict,
    DispatchError,
    Forbidden,
    InvalidInput,
    NotFound,
)
from dispatch_tui.rules.validation import REQUEST_ID, CallIntake
from dispatch_tui.service.dispatch_service import DispatchService


def examples(ci: int) -> int:
    """CI runs `ci` examples; a nightly-style run sets DISPATCH_FUZZ_EXAMPLES (e.g. 10000)."""
    return int(os.environ.get("DISPATCH_FUZZ_EXAMPLES", ci))


USER_ERRORS = (InvalidInput, NotFound, Conflict, Forbidden)
# Function-scoped fixtures (world, capsys) are shared by all examples of one test; each example
# checks itself against counts taken just before it, so sharing is safe.
DB = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NASTY = [
    "",
    " ",
    "[bold]x[/bold]",
    "[/]",
    "[link=https://example.com]x[/link]",
    "'; DROP TABLE calls; --",
    "Robert'); DELETE FROM units;--",
    '" OR 1=1 --',
    "%s%s%n",
    "{0}{nature}",
    "$1",
    "\\",
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "line\nbreak",
    "\r\n",
    "\t",
    "\u202eevil",
    "\u200b",
    "\u2028",
    "\ufeff",
    "\ud800",
    "\uffff",
    "\U0010ffff",
    "🚑🚒",
    "ǅß İ",
    "-h",
    "--help",
    "--json",
    "--",
]
texts = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),  # the default alphabet includes control characters (and NUL)
    st.text(st.characters(max_codepoint=0x7F), max_size=20),
    # Long text around and far beyond the column limits (200, 300, 4000 characters).
    st.builds(operator.mul, st.sampled_from(["a", "é", "🚑", " ", "[b]"]), st.integers(150, 4500)),
)
plain = st.text(
    st.characters(exclude_categories=("Cc", "Cs", "Co", "Cn")), min_size=1, max_size=60
).filter(lambda s: s.strip() != "")


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly real values, some junk: an action whose every argument is junk is refused at the
    first check and never reaches the deeper states where bugs live."""
    # Not st.one_of(good, good, good, bad): one_of flattens nested one_ofs and drops repeats,
    # so the junk side, itself a one_of of many, would win most draws.
    return st.integers(0, 4).flatmap(lambda i: bad if i == 4 else good)


def spellings(values: list[str]) -> st.SearchStrategy[str]:
    """Real values as people type them: any case, stray blanks around. Hypothesis avoids
    repeating an example, so a handful of fixed good values would soon leave only the junk."""

    def spell(value: str, flips: list[bool], left: str, right: str) -> str:
        flips = (flips + [False] * len(value))[: len(value)]
        flipped = (c.swapcase() if f else c for c, f in zip(value, flips, strict=True))
        return left + "".join(flipped) + right

    return st.builds(
        spell,
        st.sampled_from(values),
        st.lists(st.booleans(), max_size=8),
        st.sampled_from(["", " ", "  ", "\t"]),
        st.sampled_from(["", " ", "\n"]),
    )


unit_codes = mostly(
    spellings(["M1", "M2", "B3", "M6", "B6"]),
    st.one_of(st.sampled_from(["X9", "MERCY", "C-1001", "M1,M2", "M 1", "M1\x00"]), texts),
)
hospital_codes = mostly(
    spellings(["MERCY", "STJ", "CHILD", "EAST"]),
    st.one_of(st.sampled_from(["NOPE", "M1", "MERCY\x00"]), texts),
)


@dataclass(frozen=True)
class CallRef:
    """One of the calls an example of the desk sequence creates, spelt some way a desk might.

    The sequence does not reset the database between examples (TRUNCATE costs more than the
    example), so call numbers differ from one example to the next; this names them by index."""

    index: int
    spelling: str

    def resolve(self, numbers: list[str]) -> str:
        return self.spelling.format(numbers[self.index].removeprefix("C-"))


desk_calls = mostly(
    st.builds(CallRef, st.sampled_from([0, 1]), st.sampled_from(["C-{}", "{}", "c{}", " C-0{} "])),
    st.one_of(st.sampled_from(["C-0", "C-999999999", "C--1", "C-١"]), texts),
)
users = mostly(
    spellings(["alice", "alice", "alice", "alice", "alice", "bob", "carol", "dave", "grace"]),
    st.one_of(st.sampled_from(["admin", "mallory", "al ice", "alice\x00"]), texts),
)
unit_statuses = mostly(
    spellings(
        ["EN_ROUTE", "ON_SCENE", "TRANSPORTING", "AT_HOSPITAL", "AVAILABLE", "OUT_OF_SERVICE"]
    ),
    st.one_of(
        st.sampled_from(["CLOSED", "RECEIVED", "on scene", "ON_SCENE\x00", "OUT-OF-SERVICE"]),
        texts,
    ),
)
coordinates = mostly(
    st.one_of(st.floats(-90, 90), st.sampled_from(["40.01", " -83 ", "0", "-90", "90.0"])),
    st.one_of(
        st.floats(),  # includes NaN, ±inf, subnormals and ±1.8e308
        st.floats(-200, 200),
        st.integers(-1000, 1000),
        st.sampled_from(["nan", "inf", "-inf", "1e999", "1_0", "٤٠", "0x10", "", "40,5"]),
        texts,
    ),
)


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every row a refused action must leave alone."""
    with engine.connect() as conn:
        return {
            table: conn.execute(
                text(f"SELECT coalesce(string_agg(t::text, '|' ORDER BY t.id), '') FROM {table} t")
            ).scalar_one()
            for table in ("units", "assignments", "calls", "hospitals", "audit_log")
        }


def consistent(engine: Engine) -> None:
    """Invariants no sequence of actions may break."""
    with engine.connect() as conn:
        units_off = conn.execute(
            text(
                "SELECT string_agg(code || ':' || status, ', ') FROM units u WHERE"
                " (status IN ('EN_ROUTE', 'ON_SCENE', 'TRANSPORTING', 'AT_HOSPITAL')) <>"
                " EXISTS (SELECT 1 FROM assignments a WHERE a.unit_id = u.id"
                "         AND a.cleared_at IS NULL AND a.cancelled_at IS NULL)"
            )
        ).scalar_one()
        calls_off = conn.execute(
            text(
                "SELECT string_agg(number || ':' || status, ', ') FROM calls c WHERE"
                " status IN ('RECEIVED', 'CLOSED', 'CANCELLED') ="
                " EXISTS (SELECT 1 FROM assignments a WHERE a.call_id = c.id"
                "         AND a.cleared_at IS NULL AND a.cancelled_at IS NULL)"
            )
        ).scalar_one()
    assert units_off is None, f"busy without an assignment or vice versa: {units_off}"
    assert calls_off is None, f"call status disagrees with its active units: {calls_off}"


def shown_as_is(err: DispatchError) -> None:
    """errors.py promises `str(err)` is one line, fit to show as is: the desk's status line and
    the CLI's `error: ...` line print it raw, so an echoed newline or escape sequence would
    break the line or drive the terminal."""
    assert err.message, "an empty rejection reason"
    bad = [c for c in err.message if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    assert not bad, f"{type(err).__name__} message carries {bad!r}: {err.message!r}"


def expected_text(value: str) -> str:
    """What the service promises to store: the input trimmed (tabs shown as spaces)."""
    return value.strip().replace("\t", " ")


# -- the command bar's grammar (no database) ------------------------------------------------------

WORDS = [
    *grammar.STATUS_SHORTHANDS,
    *grammar.VERB_SHORTHANDS,
    *["call", "new", "show", "cancel", "close", "dispatch", "unit", "status", "locate"],
    *["hospital", "recommend", "audit", "calls", "units", "hospitals", "places"],
    *["M1", "C-1001", "MERCY", "1001", "40.0", "-83.0", "nan", "-1", "x"],
    *["--add", "--hospital", "--paramedic", "-p", "--priority", "-n", "--limit", "--beds"],
    *["--all", "--reason", "--disposition", "--divert-override", "--location", "--lat"],
    *["--json", "--db", "--as", "-h", "--help", "--version", "--", "-", "--hosp"],
    *["--db=postgresql://u:pw@db/x", "--as=alice", "--a=bob", "--js", "--json=1", "--as="],
    *["-83.", "-8.3e1", "-1e-3", "-inf", "40,5", "SHOW", "Calls", "UNIT", "STATUS"],
    *["'", '"', "\\", "[bold]", "'; DROP TABLE calls; --", "\x00", "\n", "#", "=", "--priority=2"],
]
lines = st.one_of(
    st.text(max_size=80),
    st.sampled_from(NASTY),
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), max_size=8).map(" ".join),
)


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(line=lines)
def test_parse_line_returns_a_verb_or_invalid_input(
    line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        command = grammar.parse_line(line)
    except InvalidInput as err:
        shown_as_is(err)
    else:
        # Every line that parses is one of the typed commands the executor runs.
        assert isinstance(command, typing.get_args(commands.Command)), command
    # A parse never prints usage or help over the desk (SystemExit would have failed above).
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("d C-1042 M12", commands.Dispatch),
        ("tx M12 MERCY", commands.SetUnitStatus),
        ("hs MERCY diversion --beds 2", commands.SetHospitalStatus),
        ("new 'chest pain' -p 1 --location '[bold]x[/bold]'", commands.NewCall),
    ],
)
def test_parse_line_known_lines(line: str, kind: type) -> None:
    # Guards the property above against a grammar that refuses everything.
    assert isinstance(grammar.parse_line(line), kind)


@pytest.mark.parametrize(
    "line", ["", "   ", "d", "'unclosed", "-h", "--help", "os", "rec C-1 -n x"]
)
def test_parse_line_refusals(line: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidInput):
        grammar.parse_line(line)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    "line",
    [
        "unit status M1 'x\ny'",
        "unit status M1 '\x1b[2J'",
        "os M1 extra 'a\rb'",
        "'\x1b]0;pwned\x07'",
    ],
)
def test_parse_errors_echo_input_on_one_printable_line(line: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        grammar.parse_line(line)
    shown_as_is(caught.value)


ECHOING: dict[str, Callable[[DispatchService], object]] = {
    "unit-status": lambda w: w.unit_status("alice", "M1", "on\nscene"),
    "unit-status-escape": lambda w: w.unit_status("alice", "M1", "\x1b[2J"),
    "hospital-status": lambda w: w.hospital_status("alice", "MERCY", "shut\nnow"),
    "unit-code": lambda w: w.locate_unit("alice", "M\n1", 40, -83),
    "place": lambda w: w.create_call(
        "alice", CallIntake(nature="Fall", place="Mall\u2028Road", priority=3)
    ),
}


@pytest.mark.parametrize("attempt", list(ECHOING.values()), ids=list(ECHOING))
def test_service_errors_echo_input_on_one_printable_line(
    world: DispatchService, attempt: Callable[[DispatchService], object]
) -> None:
    with pytest.raises(DispatchError) as caught:
        attempt(world)
    shown_as_is(caught.value)


# -- the CLI's leading options, in every spelling argparse takes (no database) ---------------------

# An option's spellings: two words, one word with `=`, and argparse's abbreviations of both.
SPELLINGS: dict[str, Callable[[str], list[list[str]]]] = {
    "--db": lambda v: [["--db", v], [f"--db={v}"], ["--d", v], [f"--d={v}"]],
    "--as": lambda v: [["--as", v], [f"--as={v}"], ["--a", v], [f"--a={v}"]],
    "--json": lambda v: [["--json"], ["--js"], ["--j"]],
}
# Values as argv holds them; none starts with '-' (`--as -x` is two options, `--as=-x` a value).
option_words = st.text(st.characters(exclude_categories=("Cs",)), max_size=20).filter(
    lambda v: not v.startswith("-")
)
OPTION_VALUES = {
    "--db": st.one_of(
        st.sampled_from(
            [
                "postgresql://u:hunter2@db:5432/dispatch",
                "postgresql://db/x?host=/tmp&sslmode=disable",
                "postgres://:p=w@[::1]/x",
                "",
            ]
        ),
        option_words,
    ),
    "--as": st.one_of(st.sampled_from(["alice", "Bob", "al ice", "a=b", ""]), option_words),
    "--json": st.just(""),
}
# A shorthand, a verb, or a few of the bar's words: what follows the options.
CLI_LINES = st.one_of(
    st.sampled_from(
        [
            "d C-1042 M12",
            "os M1",
            "tx M1 MERCY",
            "rec 1042",
            "cx M1 --reason x",
            "hs MERCY diversion",
            "SHOW UNITS",
            "loc M1 40 -83.",
            "call new x -p 1 -l y",
            "report --by Unit",
        ]
    ),
    st.lists(
        st.sampled_from([w for w in WORDS if w not in ("-h", "--help", "--version")]), max_size=5
    ).map(" ".join),
)
leading_options = st.lists(st.sampled_from(sorted(SPELLINGS)), unique=True, max_size=3).flatmap(
    lambda names: st.tuples(
        *(
            st.tuples(st.just(n), OPTION_VALUES[n], st.integers(0, len(SPELLINGS[n]("")) - 1))
            for n in names
        )
    )
)


def cli_parse(parser: grammar.GrammarParser, words: list[str]) -> object:
    """What the CLI makes of `words`: its typed command and options, or that it was refused."""
    try:
        ns = parser.parse_args(grammar.expand(words))
    except InvalidInput:
        return "refused"
    return (
        grammar.command_of(ns),
        ns.verb,
        getattr(ns, "db", None),
        getattr(ns, "operator", None),
        getattr(ns, "json", False),
    )


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(options=leading_options, line=CLI_LINES)
def test_every_spelling_of_a_leading_option_means_the_same(
    options: tuple[tuple[str, str, int], ...], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--as=alice d C-1042 M12` once answered "unknown command 'd'": a shorthand hid behind an
    # option written with `=`. Whatever the spelling, the CLI must read the same request.
    from dispatch_tui.cli.main import build_parser

    parser = build_parser()
    words = line.split()
    spelled = [w for name, value, i in options for w in SPELLINGS[name](value)[i]]
    canonical = [w for name, value, _ in options for w in SPELLINGS[name](value)[0]]
    event("spelled otherwise" if spelled != canonical else "canonical")
    assert cli_parse(parser, spelled + words) == cli_parse(parser, canonical + words)
    assert capsys.readouterr() == ("", "")


# -- create_call ------------------------------------------------------------------------------------

# A call a dispatcher could really take...
GOOD_INTAKE: dict[str, st.SearchStrategy[Any]] = {
    "nature": plain,
    "location": plain,
    "caller_name": st.one_of(st.just(""), plain),
    "caller_phone": st.sampled_from(["", "555-0142", "+1 (555) 010.99"]),
    "notes": st.one_of(st.just(""), plain),
    "priority": st.sampled_from([1, 4, "2", "P3", " p4 "]),
    "determinant": st.sampled_from(["", "10-D-1", "09-e-1"]),
    "lat": st.sampled_from([None, 40.02]),
    "lon": st.sampled_from([None, -82.99]),
}
# ...and what can go wrong with each of its fields.
BAD_INTAKE: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(["nature", "location", "caller_name", "caller_phone", "notes"], texts),
    "priority": st.one_of(
        st.none(), st.integers(-3, 8), st.sampled_from(["0", "5", "١", "P", "2.5"]), texts
    ),
    "determinant": st.one_of(st.sampled_from(["99-Z-1", "1-D-", "10-d-1a"]), texts),
    "lat": st.one_of(st.none(), coordinates),
    "lon": st.one_of(st.none(), coordinates),
}
intakes = st.builds(
    lambda good, bad: CallIntake(**{**good, **bad}),
    st.fixed_dictionaries(GOOD_INTAKE),
    # Spoil none, one or two fields, so each check is reached on its own and in company.
    st.lists(st.sampled_from(sorted(BAD_INTAKE)), max_size=2, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: BAD_INTAKE[k] for k in keys})
    ),
)


def stored_call(engine: Engine, number: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM calls WHERE number = :n"), {"n": number})
        return dict(row.mappings().one())


@DB
@given(raw=intakes)
def test_create_call_stores_exactly_or_refuses(
    world: DispatchService, engine: Engine, raw: CallIntake
) -> None:
    before = snapshot(engine)
    try:
        view = world.create_call("alice", raw)
    except InvalidInput as err:
        shown_as_is(err)
        event("refused")  # --hypothesis-show-statistics tells how often each side is reached
        assert snapshot(engine) == before, "a refused call wrote something"
        return
    event("accepted")
    row = stored_call(engine, view.number)
    assert row["nature"] == expected_text(raw.nature)
    assert row["location_text"] == expected_text(raw.location)
    assert row["caller_name"] == expected_text(raw.caller_name)
    assert row["caller_phone"] == expected_text(raw.caller_phone)
    assert row["notes"] == expected_text(raw.notes)
    assert 1 <= row["priority"] <= 4 and row["status"] == "RECEIVED"
    assert view.nature == row["nature"] and view.caller_name == row["caller_name"]
    after = snapshot(engine)
    assert after["audit_log"] != before["audit_log"], "a new call was not audited"
    assert (after["units"], after["assignments"]) == (before["units"], before["assignments"])


@DB
@given(
    nature=plain,
    location=plain,
    caller=st.one_of(plain, st.sampled_from(NASTY[2:12])),
    notes=st.text(st.characters(exclude_categories=("Cc", "Cs", "Co", "Cn")), max_size=300),
)
def test_printable_text_is_accepted_and_stored_literally(
    world: DispatchService, engine: Engine, nature: str, location: str, caller: str, notes: str
) -> None:
    # Any printable text within the limits must be taken: markup, SQL and emoji are just text.
    view = world.create_call(
        "alice",
        CallIntake(nature=nature, location=location, caller_name=caller, notes=notes, priority="2"),
    )
    row = stored_call(engine, view.number)
    got = (row["nature"], row["location_text"], row["caller_name"], row["notes"])
    assert got == tuple(expected_text(v) for v in (nature, location, caller, notes))


def test_markup_caller_is_stored_literally(world: DispatchService, engine: Engine) -> None:
    view = world.create_call(
        "alice",
        CallIntake(
            nature="'; DROP TABLE calls; --",
            location="[red]Main St[/red]",
            caller_name="[bold]x[/bold]",
            priority=2,
        ),
    )
    row = stored_call(engine, view.number)
    assert row["caller_name"] == "[bold]x[/bold]"
    assert row["nature"] == "'; DROP TABLE calls; --"
    assert row["location_text"] == "[red]Main St[/red]"
    assert world.call(view.number).caller_name == "[bold]x[/bold]"


def test_huge_nature_is_refused(world: DispatchService, engine: Engine) -> None:
    before = snapshot(engine)
    with pytest.raises(InvalidInput, match="too long"):
        world.create_call("alice", CallIntake(nature="x" * 100_000, location="Main St", priority=1))
    assert snapshot(engine) == before


@pytest.mark.parametrize("field", ["nature", "location", "caller_name", "notes", "caller_phone"])
def test_nul_byte_is_invalid_input_not_a_database_error(
    world: DispatchService, engine: Engine, field: str
) -> None:
    fields: dict[str, Any] = {"nature": "Fall", "location": "Main St", "priority": 3}
    fields[field] = "a\x00b"
    before = snapshot(engine)
    with pytest.raises(InvalidInput):
        world.create_call("alice", CallIntake(**fields))
    assert snapshot(engine) == before


def test_nul_byte_elsewhere_is_invalid_input(world: DispatchService, engine: Engine) -> None:
    number = world.create_call(
        "alice", CallIntake(nature="Fall", location="Main St", priority=3)
    ).number
    before = snapshot(engine)
    attempts: list[Callable[[], object]] = [
        lambda: world.dispatch("alice", number, ["M1\x00"]),
        lambda: world.dispatch("alice", number + "\x00", ["M1"]),
        lambda: world.dispatch("alice", number, ["M1"], hospital="MERCY\x00"),
        lambda: world.dispatch("alice", number, ["M1"], paramedic="carol\x00"),
        lambda: world.dispatch("alice\x00", number, ["M1"]),
        lambda: world.unit_status("alice", "M1", "OUT_OF_SERVICE\x00"),
        lambda: world.locate_unit("alice", "M1", "40\x00", "-83"),
        lambda: world.hospital_status("alice", "MERCY", "OPEN", beds="3\x00"),
        lambda: world.cancel_call("alice", number, "oops\x00"),
        lambda: world.close_call("alice", number, "done\x00"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidInput):
            attempt()
    assert snapshot(engine) == before


# A Python int is a valid argument where `float` or `int` is typed. 10**400 has no float value;
# 10**5000 also exceeds the 4300-digit limit of int -> str, which the error path itself hits.
HUGE_INTS: dict[str, Callable[[DispatchService], object]] = {
    "locate-lat": lambda w: w.locate_unit("alice", "M1", 10**400, 0),
    "intake-lat": lambda w: w.create_call(
        "alice", CallIntake(nature="Fall", location="x", priority=1, lat=10**400, lon=0)
    ),
    "intake-priority": lambda w: w.create_call(
        "alice", CallIntake(nature="Fall", location="x", priority=10**5000)
    ),
    "hospital-beds": lambda w: w.hospital_status("alice", "MERCY", beds=10**5000),
}


@pytest.mark.parametrize("attempt", list(HUGE_INTS.values()), ids=list(HUGE_INTS))
def test_huge_integer_is_invalid_input(
    world: DispatchService, engine: Engine, attempt: Callable[[DispatchService], object]
) -> None:
    before = snapshot(engine)
    with pytest.raises(InvalidInput):
        attempt(world)
    assert snapshot(engine) == before


# -- status, position and hospital changes ------------------------------------------------------------


@DB
@given(user=users, code=unit_codes, lat=coordinates, lon=coordinates)
def test_locate_unit_random_input(
    world: DispatchService, engine: Engine, user: str, code: str, lat: Any, lon: Any
) -> None:
    before = snapshot(engine)
    try:
        view = world.locate_unit(user, code, lat, lon)
    except USER_ERRORS as err:
        event(err.kind)
        assert snapshot(engine) == before
        return
    assert (view.lat, view.lon) == (float(lat), float(lon))
    assert -90 <= view.lat <= 90 and -180 <= view.lon <= 180
    assert view.status == "AVAILABLE"  # nothing in this test ever dispatches
    assert snapshot(engine)["audit_log"] != before["audit_log"], "a position update was not audited"


@DB
@given(
    user=users,
    code=hospital_codes,
    status=mostly(st.one_of(st.none(), spellings(["open", "diversion", "closed"])), texts),
    beds=mostly(
        st.one_of(st.none(), st.integers(0, 10_000), st.sampled_from(["3", " 7 "])),
        st.one_of(st.integers(-5, 20_000), st.sampled_from(["-1", "10001", "2.5", "nan"]), texts),
    ),
)
def test_hospital_status_random_input(
    world: DispatchService, engine: Engine, user: str, code: str, status: Any, beds: Any
) -> None:
    before = snapshot(engine)
    try:
        view = world.hospital_status(user, code, status, beds=beds)
    except USER_ERRORS as err:
        event(err.kind)
        assert snapshot(engine) == before
        return
    if status is not None:
        assert view.status == status.strip().upper()
    if beds is not None:
        assert view.beds_available == int(str(beds).strip())
        assert 0 <= view.beds_available <= 10_000
    assert snapshot(engine)["audit_log"] != before["audit_log"]


# One action of a desk, with arguments drawn from real values and junk alike.
reasons = mostly(st.sampled_from(["", "not needed", "[i]caller[/i] hung up"]), texts)
# The desk sequences work on three units, so that dispatches and status keys meet.
desk_units = mostly(
    spellings(["M1", "M2", "B1"]),
    st.one_of(st.sampled_from(["X9", "MERCY", "C-1001", "M1,M2", "M 1", "M1\x00"]), texts),
)
dispatch_action = st.tuples(
    st.just("dispatch"),
    st.fixed_dictionaries(
        {
            "username": users,
            "call_number": desk_calls,
            "unit_codes": mostly(
                st.lists(
                    spellings(["M1", "M2", "B1"]),
                    min_size=1,
                    max_size=2,
                    unique_by=lambda c: c.strip().upper(),
                ),
                st.lists(desk_units, max_size=3),
            ),
            "paramedic": mostly(st.sampled_from([None, None, None, "carol", "dave"]), texts),
            "hospital": mostly(st.sampled_from([None, "MERCY", "stj"]), hospital_codes),
            "override_diversion": st.booleans(),
            "add": st.booleans(),
        }
    ),
)
status_action = st.tuples(
    st.just("unit_status"),
    st.fixed_dictionaries(
        {
            "username": users,
            "unit_code": desk_units,
            "status": unit_statuses,
            "hospital": mostly(st.sampled_from([None, "UNIV"]), hospital_codes),
            "override_diversion": st.booleans(),
        }
    ),
)
locate_action = st.tuples(
    st.just("locate_unit"),
    st.fixed_dictionaries(
        {"username": users, "unit_code": desk_units, "lat": coordinates, "lon": coordinates}
    ),
)
hospital_action = st.tuples(
    st.just("hospital_status"),
    st.fixed_dictionaries(
        {
            "username": users,
            "code": hospital_codes,
            "status": mostly(spellings(["open", "diversion", "closed"]), texts),
        }
    ),
)
cancel_unit_action = st.tuples(
    st.just("cancel_unit"),
    st.fixed_dictionaries({"username": users, "unit_code": desk_units, "reason": reasons}),
)
cancel_call_action = st.tuples(
    st.just("cancel_call"),
    st.fixed_dictionaries({"username": users, "call_number": desk_calls, "reason": reasons}),
)
close_call_action = st.tuples(
    st.just("close_call"),
    st.fixed_dictionaries({"username": users, "call_number": desk_calls, "disposition": reasons}),
)
create_call_action = st.tuples(
    st.just("create_call"),
    st.builds(lambda user, raw: {"username": user, "raw": raw}, users, intakes),
)
# One action of a desk. Weighted by hand (one_of would drop repeated strategies): dispatches
# and status keys come up most, as at a real desk, and a call is cancelled only now and then.
ACTION_MIX = [
    *[dispatch_action] * 3,
    *[status_action] * 5,
    locate_action,
    hospital_action,
    cancel_unit_action,
    cancel_call_action,
    close_call_action,
    create_call_action,
]
actions = st.integers(0, len(ACTION_MIX) - 1).flatmap(lambda i: ACTION_MIX[i])


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(head_start=st.booleans(), steps=st.lists(actions, min_size=3, max_size=10))
def test_random_desk_actions_change_all_or_nothing(
    world: DispatchService,
    engine: Engine,
    head_start: bool,
    steps: list[tuple[str, dict[str, Any]]],
) -> None:
    # Every example starts from the same board: nothing open, every unit available, every
    # hospital open, and two new pending calls; with a head start, M1 is already on the first,
    # so the status keys that follow more often meet a unit on a call.
    clear_the_board(engine)
    numbers = [
        world.create_call("alice", CallIntake(nature=n, location="Main St", priority=1)).number
        for n in ("Chest pain", "Fall")
    ]
    if head_start:
        world.dispatch("alice", numbers[0], ["M1"])
    for name, kwargs in steps:
        args = {k: v.resolve(numbers) if isinstance(v, CallRef) else v for k, v in kwargs.items()}
        before = snapshot(engine)
        try:
            getattr(world, name)(**args)
        except USER_ERRORS as err:
            # The wording of refusals is checked by the *_on_one_printable_line tests; here
            # only that a refusal wrote nothing, so one echo bug does not mask others.
            event(f"{name}: {err.kind}")
            assert snapshot(engine) == before, f"refused {name} wrote something"
        else:
            event(f"{name}: done")
            after = snapshot(engine)
            assert after["audit_log"] != before["audit_log"], f"{name} was not audited"
        consistent(engine)


def clear_the_board(engine: Engine) -> None:
    """End whatever the last example left open, straight in SQL: this is set-up, not a desk
    action, so it must not depend on the service under test (nor write to the audit log)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE assignments SET cancelled_at = now()"
                " WHERE cleared_at IS NULL AND cancelled_at IS NULL"
            )
        )
        conn.execute(
            text(
                "UPDATE calls SET status = 'CANCELLED', cancelled_at = now()"
                " WHERE status NOT IN ('CLOSED', 'CANCELLED')"
            )
        )
        conn.execute(text("UPDATE units SET status = 'AVAILABLE' WHERE status <> 'AVAILABLE'"))
        conn.execute(text("UPDATE hospitals SET status = 'OPEN' WHERE status <> 'OPEN'"))


# -- the CLI -------------------------------------------------------------------------------------

CLI_CODES = {0, 2, 3, 4, 5}


def no_surrogates(value: str) -> bool:
    # A real argv holds no lone surrogates except surrogateescape'd bytes, and the real stderr
    # escapes those (errors="backslashreplace"); capsys's stream is strict UTF-8 and would fail
    # on them where the terminal does not (checked with a real process: exit 2, one error line).
    return not any("\ud800" <= ch <= "\udfff" for ch in value)


argv_texts = mostly(plain, texts).filter(no_surrogates)
argv_coordinates = coordinates.map(str).filter(no_surrogates)


def count_calls(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM calls")).scalar_one())


# db_env as a mark, not an argument: Hypothesis would print it, environment and all.
@pytest.mark.usefixtures("db_env")
@settings(
    max_examples=examples(50),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    nature=argv_texts,
    priority=mostly(st.sampled_from(["1", "p4", " 2 ", "P3"]), argv_texts),
    location=argv_texts,
)
def test_cli_call_new_fuzz(
    world: DispatchService,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    nature: str,
    priority: str,
    location: str,
) -> None:
    capsys.readouterr()
    before = count_calls(engine)
    code = main(["call", "new", nature, "-p", priority, "--location", location])
    out, err = capsys.readouterr()
    event(f"exit {code}")
    if code == 0 and out.startswith("usage:"):  # a help flag among the words
        assert count_calls(engine) == before
        return
    assert code in CLI_CODES, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if code == 0:
        assert count_calls(engine) == before + 1
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT nature FROM calls ORDER BY id DESC LIMIT 1"))
            assert stored.scalar_one() == expected_text(nature)
        assert err == ""
    else:
        assert count_calls(engine) == before
        # The documented contract: one `error: ...` line on stderr.
        assert err.startswith("error: ") and err.count("\n") == 1, err


@pytest.mark.usefixtures("db_env")
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(note=argv_texts, nature=argv_texts, caller=argv_texts, disposition=argv_texts)
def test_cli_call_record_fuzz(
    world: DispatchService,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    note: str,
    nature: str,
    caller: str,
    disposition: str,
) -> None:
    """Any text in a note, an edit or a disposition: stored as typed, or refused in one line
    with nothing written."""
    capsys.readouterr()
    number = world.create_call(
        "alice", CallIntake(nature="Fuzz", location="1 Main St", priority=3)
    ).number
    with engine.connect() as conn:
        audit_before = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    for argv, check in (
        (["call", "note", number, note], "narrative"),
        (["call", "update", number, "--nature", nature, "--caller", caller], "calls"),
        (["call", "close", number, "--disposition", disposition], "calls"),
    ):
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM narrative")).scalar_one()
            row_before = conn.execute(
                text("SELECT nature, caller_name, status FROM calls WHERE number = :n"),
                {"n": number},
            ).one()
        code = main(argv)
        out, err = capsys.readouterr()
        event(f"{argv[1]} exit {code}")
        if code == 0 and out.startswith("usage:"):
            continue
        assert code in CLI_CODES, (code, err)
        assert "Traceback" not in err and "Traceback" not in out
        with engine.connect() as conn:
            after = conn.execute(text("SELECT count(*) FROM narrative")).scalar_one()
            row_after = conn.execute(
                text("SELECT nature, caller_name, status FROM calls WHERE number = :n"),
                {"n": number},
            ).one()
        if code != 0:
            assert err.startswith("error: ") and err.count("\n") == 1, err
            assert (after, row_after) == (before, row_before), argv
        elif check == "narrative":
            assert after == before + 1
            with engine.connect() as conn:
                stored = conn.execute(
                    text("SELECT text FROM narrative ORDER BY id DESC LIMIT 1")
                ).scalar_one()
            assert stored == expected_text(note)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() >= audit_before


@pytest.mark.usefixtures("db_env")
@settings(
    max_examples=examples(50),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rid=mostly(st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True), argv_texts))
def test_cli_request_id_fuzz(
    world: DispatchService, engine: Engine, capsys: pytest.CaptureFixture[str], rid: str
) -> None:
    """Any request id: refused in one line with nothing written, or the call taken once, however
    often the same command is sent under it."""
    capsys.readouterr()
    before = count_calls(engine)
    used = 0
    if REQUEST_ID.match(rid.strip()):  # an earlier example may have used it (they share a db)
        with engine.connect() as conn:
            used = conn.execute(
                text("SELECT count(*) FROM requests WHERE id = :id"), {"id": rid.strip()}
            ).scalar_one()
    argv = ["--request-id", rid, "call", "new", "Fuzzed id", "-p", "2", "-l", "1 Main St"]
    argv += ["--new-anyway"]  # (every example takes its call at the same address)
    codes = [main(argv), main(argv)]
    out, err = capsys.readouterr()
    event(f"exit {codes}")
    assert "Traceback" not in err and "Traceback" not in out
    if codes[0] == 0:
        assert codes[1] == 0 and "not repeated" in out
        assert count_calls(engine) == before + (0 if used else 1)
    else:
        assert codes == [2, 2], (codes, err)
        assert count_calls(engine) == before
        assert err.startswith("error: ") and err.count("\n") == 2, err


@pytest.mark.usefixtures("db_env")
@settings(
    max_examples=examples(50),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(code=unit_codes.filter(no_surrogates), lat=argv_coordinates, lon=argv_coordinates)
def test_cli_unit_locate_fuzz(
    world: DispatchService,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    code: str,
    lat: str,
    lon: str,
) -> None:
    capsys.readouterr()
    before = snapshot(engine)
    rc = main(["unit", "locate", code, lat, lon])
    out, err = capsys.readouterr()
    event(f"exit {rc}")
    if rc == 0 and out.startswith("usage:"):
        # `-h`, or an abbreviation of --help such as `--he`, among the words: the help, exit 0.
        assert snapshot(engine) == before
        return
    assert rc in CLI_CODES, (rc, err)
    assert "Traceback" not in err and "Traceback" not in out
    if rc == 0:
        with engine.connect() as conn:
            position = conn.execute(
                text("SELECT lat, lon FROM units WHERE code = :c"), {"c": code.strip().upper()}
            ).one()
        assert tuple(position) == (float(lat), float(lon))
    else:
        assert snapshot(engine) == before
        assert err.startswith("error: ") and err.count("\n") == 1, err


@pytest.mark.usefixtures("db_env")
@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    db_spelling=st.integers(0, 3),
    user=mostly(spellings(["alice", "bob", "carol"]), argv_texts).filter(
        lambda v: not v.startswith("-")
    ),
    as_spelling=st.integers(0, 3),
    json=st.sampled_from([[], ["--json"], ["--js"]]),
    command=st.sampled_from(
        [["rec", "{call}"], ["show", "units"], ["os", "M1"], ["d", "{call}", "M1"], ["cx", "M2"]]
    ),
)
def test_cli_options_written_with_equals_fuzz(
    world: DispatchService,
    engine: Engine,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    db_spelling: int,
    user: str,
    as_spelling: int,
    json: list[str],
    command: list[str],
) -> None:
    # The real CLI, with `--db` and `--as` spelt every way argparse takes them, before a
    # shorthand: a typed answer and one line, as with the two-word spelling; never exit 1.
    clear_the_board(engine)
    number = world.create_call("alice", CallIntake(nature="Fall", location="x", priority=2)).number
    capsys.readouterr()
    before = snapshot(engine)
    words = [
        *SPELLINGS["--db"](database_url)[db_spelling],
        *SPELLINGS["--as"](user)[as_spelling],
        *json,
        *(word.format(call=number) for word in command),
    ]
    code = main(words)
    out, err = capsys.readouterr()
    event(f"exit {code}")
    assert code in CLI_CODES, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert "unknown command" not in err, err  # the shorthand was read as one
    if code != 0:
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert snapshot(engine) == before


@pytest.mark.usefixtures("db_env")
@pytest.mark.parametrize("status", ["on\nscene", "\x1b[2J"])
def test_cli_error_is_one_line(
    world: DispatchService, capsys: pytest.CaptureFixture[str], status: str
) -> None:
    capsys.readouterr()
    assert main(["unit", "status", "M1", status]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "\x1b" not in err, err


@pytest.mark.usefixtures("db_env")
def test_cli_prints_markup_literally(
    world: DispatchService, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(
        ["call", "new", "Fall", "-p", "3", "--location", "Main St", "--caller", "[bold]x[/bold]"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[bold]x[/bold]" in out
