"""What a user types, checked before anything reaches the database: codes, call numbers, text
fields, priorities and determinants, positions, beds and the whole intake of a new call. Each
check returns the clean value or raises `InvalidInput` with one printable line.
(tests/test_bad_input.py throws random input at the service and the CLI on PostgreSQL.)"""

from __future__ import annotations

import pytest

from dispatch_tui.rules import validation as v
from dispatch_tui.rules.errors import ExitCode, InvalidInput
from dispatch_tui.rules.validation import CallIntake, CleanIntake, intake


def refused(check: object, *args: object, **kwargs: object) -> str:
    """Call `check`, which must refuse; return its one-line message."""
    with pytest.raises(InvalidInput) as err:
        check(*args, **kwargs)  # type: ignore[operator]
    assert err.value.exit_code == ExitCode.INVALID
    message = err.value.message
    assert message.isprintable(), f"not one printable line: {message!r}"
    return message


# -- codes and names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "code"), [("M12", "M12"), (" m12 ", "M12"), ("b-2", "B-2"), ("X" * 16, "X" * 16)]
)
def test_unit_codes_are_trimmed_and_upper_cased(typed: str, code: str) -> None:
    assert v.unit_code(typed) == code


@pytest.mark.parametrize("typed", ["", "  ", "M 12", "M1!", "M_1", "X" * 17, "Ü1"])
def test_bad_unit_codes_are_refused(typed: str) -> None:
    assert refused(v.unit_code, typed).endswith("is not a unit number (like M12)")


def test_hospital_codes() -> None:
    assert v.hospital_code(" mercy ") == "MERCY"
    assert (
        refused(v.hospital_code, "St Joseph") == "'St Joseph' is not a hospital code (like MERCY)"
    )


def test_a_bad_value_is_echoed_short_and_printable() -> None:
    # A flood of text is cut to 24 characters; an escape sequence never reaches the terminal.
    assert refused(v.unit_code, "A" * 100) == "'" + "A" * 23 + "…' is not a unit number (like M12)"
    assert refused(v.unit_code, "\x1b[2J") == "'?[2J' is not a unit number (like M12)"


@pytest.mark.parametrize(
    ("typed", "number"),
    [
        ("C-1042", "C-1042"),
        ("c1042", "C-1042"),
        ("1042", "C-1042"),
        (" c-1042 ", "C-1042"),
        ("C-0042", "C-42"),  # one canonical spelling, whatever the zeros
        ("0042", "C-42"),
        ("C-123456789", "C-123456789"),
    ],
)
def test_call_numbers_in_every_spelling(typed: str, number: str) -> None:
    assert v.call_number(typed) == number


@pytest.mark.parametrize(
    "typed", ["", "C-", "C", "C--1042", "C-10a", "D-1042", "c 1042", "-1042", "C-1234567890"]
)
def test_bad_call_numbers_are_refused(typed: str) -> None:
    assert refused(v.call_number, typed).endswith("is not a call number (like C-1042)")


@pytest.mark.parametrize(
    ("typed", "name"), [("alice", "alice"), (" bob ", "bob"), ("j.o-e_1", "j.o-e_1")]
)
def test_user_names(typed: str, name: str) -> None:
    assert v.username(typed) == name


@pytest.mark.parametrize("typed", ["", "a b", "alice;", "a" * 64, "zoë"])
def test_bad_user_names_are_refused(typed: str) -> None:
    assert "is not a user name" in refused(v.username, typed)


# -- text fields -----------------------------------------------------------------------------------


def test_text_is_trimmed_and_any_printable_unicode_kept() -> None:
    assert v.text_field("nature", "  Chest pain  ", 200) == "Chest pain"
    assert v.text_field("notes", "Ünïcødé 救急 🚑 [b]x[/b]", 200) == "Ünïcødé 救急 🚑 [b]x[/b]"
    assert v.text_field("notes", "", 200) == ""


def test_a_tab_becomes_a_space() -> None:
    assert v.text_field("notes", "left\tright", 200) == "left right"


def test_a_required_field_must_have_text() -> None:
    assert refused(v.text_field, "nature", "   ", 200, required=True) == "nature is required"


def test_length_is_counted_after_trimming() -> None:
    assert v.text_field("nature", "  abcde  ", 5) == "abcde"
    message = refused(v.text_field, "nature", "abcdef", 5)
    assert message == "nature is too long (6 characters, at most 5)"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),  # inside the text: a newline would split a one-line record
        ("a\rb", "U+000D"),
        ("\x1b[2Jcleared", "U+001B"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("a\ud800b", "U+D800"),  # a lone surrogate cannot be stored as UTF-8
        ("a\ue000b", "U+E000"),  # private use
        ("a\u0378b", "U+0378"),  # unassigned
    ],
)
def test_control_characters_are_refused_and_named(text: str, code: str) -> None:
    assert (
        refused(v.text_field, "notes", text, 200) == f"notes contains a control character ({code})"
    )


def test_control_characters_at_the_ends_are_trimmed_like_spaces() -> None:
    assert v.text_field("nature", "\r\nFall\n", 200) == "Fall"


# -- priority and determinant --------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "priority"), [(1, 1), ("2", 2), ("P3", 3), (" p4 ", 4)])
def test_priorities(typed: int | str, priority: int) -> None:
    assert v.priority(typed) == priority


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (0, "priority 0 is not 1–4"),
        (5, "priority 5 is not 1–4"),
        ("-1", "priority -1 is not 1–4"),
        ("high", "priority 'high' is not 1–4"),
        ("", "priority '' is not 1–4"),
        ("1.5", "priority '1.5' is not 1–4"),
        # Too many digits even to print (and to name the test case after).
        pytest.param(10**5000, "priority 'a huge number' is not 1–4", id="10**5000"),
    ],
)
def test_bad_priorities_are_refused(typed: int | str, message: str) -> None:
    assert refused(v.priority, typed) == message


@pytest.mark.parametrize(
    ("typed", "code"), [("10-D-1", "10-D-1"), (" 9-e-1 ", "9-E-1"), ("26-A-12B", "26-A-12B")]
)
def test_mpds_determinants(typed: str, code: str) -> None:
    assert v.determinant(typed) == code


@pytest.mark.parametrize("typed", ["10-F-1", "10D1", "100-D-1", "10-D-", "D-1"])
def test_bad_determinants_are_refused(typed: str) -> None:
    assert refused(v.determinant, typed).endswith("is not an MPDS determinant (like 10-D-1)")


@pytest.mark.parametrize(
    ("code", "priority"),
    [
        ("9-E-1", 1),
        ("10-D-1", 1),
        ("10-C-2", 2),
        ("17-B-1", 3),  # Bravo is emergent but below Charlie
        ("26-A-1", 4),
        ("26-O-1", 4),
    ],
)
def test_priority_from_the_determinant_level(code: str, priority: int) -> None:
    assert v.priority_for_determinant(code) == priority


# -- positions and beds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "position"),
    [
        ("40.02", "-82.99", (40.02, -82.99)),
        (90, 180, (90.0, 180.0)),
        (-90, -180, (-90.0, -180.0)),
        (0, 0, (0.0, 0.0)),
    ],
)
def test_coordinates(lat: float | str, lon: float | str, position: tuple[float, float]) -> None:
    assert v.coordinate(lat, lon) == position


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        (90.0001, 0, "position 90.0001, 0.0 is out of range (lat ±90, lon ±180)"),
        (0, -180.5, "position 0.0, -180.5 is out of range (lat ±90, lon ±180)"),
        ("nan", 0, "position nan, 0.0 is out of range (lat ±90, lon ±180)"),
        (0, "inf", "position 0.0, inf is out of range (lat ±90, lon ±180)"),
        ("north", 0, "latitude and longitude must be numbers (like 40.02 -82.99)"),
        (None, 0, "latitude and longitude must be numbers (like 40.02 -82.99)"),
        (10**400, 0, "latitude and longitude must be numbers (like 40.02 -82.99)"),
    ],
)
def test_bad_coordinates_are_refused(lat: object, lon: object, message: str) -> None:
    assert refused(v.coordinate, lat, lon) == message


@pytest.mark.parametrize(("typed", "beds"), [("12", 12), (" 0 ", 0), (10_000, 10_000)])
def test_beds(typed: int | str, beds: int) -> None:
    assert v.beds(typed) == beds


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (-1, "beds -1 is out of range (0–10000)"),
        ("10001", "beds 10001 is out of range (0–10000)"),
        ("1.5", "beds '1.5' is not a whole number"),
        ("many", "beds 'many' is not a whole number"),
    ],
)
def test_bad_beds_are_refused(typed: int | str, message: str) -> None:
    assert refused(v.beds, typed) == message


# -- the intake of a new call ----------------------------------------------------------------------


def test_a_minimal_call_at_a_named_place() -> None:
    assert intake(CallIntake(nature=" Fall ", place="Riverton Mall", priority="P3")) == CleanIntake(
        nature="Fall",
        location="",
        place="Riverton Mall",
        priority=3,
        determinant=None,
        caller_name="",
        caller_phone="",
        notes="",
        position=None,
    )


def test_a_full_call_is_cleaned_field_by_field() -> None:
    clean = intake(
        CallIntake(
            nature="Chest pain",
            location=" 12 Main Street ",
            priority=None,
            determinant="10-d-1",
            caller_name=" Ann Lee ",
            caller_phone="+1 (614) 555-0100",
            notes="gate\tcode 1234",
            lat="40.02",
            lon="-82.99",
        )
    )
    assert (clean.location, clean.caller_name, clean.notes) == (
        "12 Main Street",
        "Ann Lee",
        "gate code 1234",
    )
    assert (clean.priority, clean.determinant) == (1, "10-D-1")  # derived from Delta
    assert clean.caller_phone == "+1 (614) 555-0100"
    assert clean.position == (40.02, -82.99)


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_priority_is_derived_from_the_determinant_when_not_given(blank: str | None) -> None:
    raw = CallIntake(nature="Fall", place="Mall", priority=blank, determinant="17-B-1")
    assert intake(raw).priority == 3


def test_a_given_priority_wins_over_the_determinant() -> None:
    clean = intake(CallIntake(nature="Fall", place="Mall", priority=1, determinant="17-B-1"))
    assert (clean.priority, clean.determinant) == (1, "17-B-1")


def test_priority_zero_is_refused_not_taken_as_missing() -> None:
    raw = CallIntake(nature="Fall", place="Mall", priority=0, determinant="17-B-1")
    assert refused(intake, raw) == "priority 0 is not 1–4"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (CallIntake(nature=" ", place="Mall", priority=1), "nature is required"),
        (CallIntake(nature="Fall", priority=1), "a location or a named place is required"),
        (
            CallIntake(nature="Fall", location="  ", place=" ", priority=1),
            "a location or a named place is required",
        ),
        (
            CallIntake(nature="Fall", place="Mall"),
            "priority is required (1–4), or an MPDS determinant to derive it",
        ),
        (
            CallIntake(nature="Fall", place="Mall", priority=1, determinant="10-X-1"),
            "'10-X-1' is not an MPDS determinant (like 10-D-1)",
        ),
        (
            CallIntake(nature="Fall", place="Mall", priority=1, caller_phone="call me"),
            "caller phone 'call me' is not a phone number",
        ),
        (
            CallIntake(nature="Fall", place="Mall", priority=1, lat="40.0"),
            "give both latitude and longitude, or neither",
        ),
        (
            CallIntake(nature="Fall", place="Mall", priority=1, lat=" ", lon=-83.0),
            "give both latitude and longitude, or neither",
        ),
        (
            CallIntake(nature="Fall", place="Mall", priority=1, lat=91, lon=0),
            "position 91.0, 0.0 is out of range (lat ±90, lon ±180)",
        ),
        (
            CallIntake(nature="Fall", place="Mall", priority=1, caller_name="Ann\x00"),
            "caller name contains a control character (U+0000)",
        ),
        (
            CallIntake(nature="Fall", place="Mall", priority=1, notes="x" * 4001),
            "notes is too long (4001 characters, at most 4000)",
        ),
    ],
)
def test_a_bad_intake_is_refused_with_the_field_named(raw: CallIntake, message: str) -> None:
    assert refused(intake, raw) == message


def test_blank_coordinates_mean_no_position() -> None:
    assert (
        intake(CallIntake(nature="Fall", place="Mall", priority=1, lat="", lon=None)).position
        is None
    )


@pytest.mark.parametrize(("lat", "lon"), [("40,02", "-82.99"), ("40.02", "-82,99"), ("40.02,", 0)])
def test_a_decimal_comma_is_named(lat: object, lon: object) -> None:
    assert refused(v.coordinate, lat, lon) == (
        "write latitude and longitude with a decimal point (like 40.02 -82.99)"
    )
