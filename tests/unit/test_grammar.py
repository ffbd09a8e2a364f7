"""One grammar for the CLI and the command bar: every line becomes the same typed command."""

from __future__ import annotations

import pytest

from dispatch_tui.cli.main import build_parser
from dispatch_tui.rules import commands as c
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.grammar import command_of, expand, parse_line
from dispatch_tui.rules.validation import CallIntake


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("d C-1042 M12 M7", c.Dispatch("C-1042", ("M12", "M7"))),
        ("D c1042 m12 --hospital mercy", c.Dispatch("c1042", ("m12",), hospital="mercy")),
        (
            "dispatch C-1 M1 --add --divert-override --paramedic carol",
            c.Dispatch("C-1", ("M1",), paramedic="carol", divert_override=True, add=True),
        ),
        ("os M12", c.SetUnitStatus("M12", "ON_SCENE")),
        ("en M12", c.SetUnitStatus("M12", "EN_ROUTE")),
        ("tx M12 MERCY", c.SetUnitStatus("M12", "TRANSPORTING", hospital="MERCY")),
        ("tx M12", c.SetUnitStatus("M12", "TRANSPORTING")),
        ("ah M12", c.SetUnitStatus("M12", "AT_HOSPITAL")),
        ("av M12", c.SetUnitStatus("M12", "AVAILABLE")),
        ("oos M12", c.SetUnitStatus("M12", "OUT_OF_SERVICE")),
        ("unit status M12 on-scene", c.SetUnitStatus("M12", "ON_SCENE")),
        ("unit status M12 onscene", c.SetUnitStatus("M12", "ON_SCENE")),
        ("loc M3 40.1 -82.9", c.LocateUnit("M3", "40.1", "-82.9")),
        ("cx M12 --reason 'wrong address'", c.CancelUnit("M12", "wrong address")),
        ("hs MERCY diversion --beds 0", c.SetHospitalStatus("MERCY", "diversion", "0")),
        ("hospital status MERCY --beds 4", c.SetHospitalStatus("MERCY", None, "4")),
        (
            "call new 'chest pain' -p 1 --place 'Riverton Mall'",
            c.NewCall(CallIntake(nature="chest pain", place="Riverton Mall", priority="1")),
        ),
        ("call cancel 1042 --reason dup", c.CancelCall("1042", "dup")),
        (
            "call close C-1042 --disposition 'treated, released'",
            c.CloseCall("C-1042", "treated, released"),
        ),
        ("call show C-7", c.ShowCall("C-7")),
        ("rec C-1042", c.Recommend("C-1042")),
        ("recommend C-1042 -n 3", c.Recommend("C-1042", 3)),
        ("show units", c.Show("units")),
        ("show calls --all", c.Show("calls", all=True)),
        ("audit --call C-1 -n 5", c.Audit("C-1", 5)),
        # The key that opens the bar, typed again into a bar left open after a command.
        (":queue M1 C-1002", c.Queue("M1", "C-1002")),
        (" : os M12", c.SetUnitStatus("M12", "ON_SCENE")),
    ],
)
def test_bar_lines_parse_to_typed_commands(line: str, expected: c.Command) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    "line",
    ["d C-1042 M12 M7", "tx M12 MERCY", "hs MERCY diversion --beds 0", "call new x -p 2 -l here"],
)
def test_the_cli_builds_the_same_command_as_the_bar(line: str) -> None:
    ns = build_parser().parse_args(expand(["--json", *line.split()]))
    assert command_of(ns) == parse_line(line)


def test_the_cli_s_own_verbs_build_no_command() -> None:
    assert command_of(build_parser().parse_args(["server", "status"])) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "type a command"),
        (":", "type a command"),
        ("d", "required"),
        ("zap M12", "unknown command .zap."),
        ("unit status M12 parked", "not a unit status"),
        ("d C-1 M1 'unclosed", "cannot read that line"),
        ("show units --help", "unrecognized arguments"),
        ("desk", "unknown command .desk."),
    ],
)
def test_bad_lines_are_invalid_input_not_exits(line: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_line(line)


def test_leading_cli_options_do_not_hide_the_shorthand() -> None:
    assert expand(["--db", "postgresql://x", "--json", "os", "M1"]) == [
        "--db",
        "postgresql://x",
        "--json",
        "unit",
        "status",
        "M1",
        "on_scene",
    ]


@pytest.mark.parametrize(
    "leading",
    [
        ["--as=alice"],
        ["--db=postgresql://u:pw@db/x?host=/tmp"],
        ["--db=postgresql://x", "--as=alice", "--json"],
        ["--d", "postgresql://x", "--a=alice", "--js"],  # argparse's abbreviations
    ],
)
def test_shorthands_follow_options_written_with_equals(leading: list[str]) -> None:
    words = expand([*leading, "d", "C-1002", "M4"])
    assert words == [*leading, "dispatch", "C-1002", "M4"]
    assert command_of(build_parser().parse_args(words)) == c.Dispatch("C-1002", ("M4",))


def test_an_equals_on_a_flag_is_no_option_to_skip() -> None:
    # `--json=x` is refused by argparse, not taken for a leading option and its value.
    assert expand(["--json=x", "os", "M1"]) == ["--json=x", "os", "M1"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # Every negative number float() reads is a number, not a missing argument.
        ("loc M1 40 -83.", c.LocateUnit("M1", "40", "-83.")),
        ("loc M1 -4e1 -8.3e1", c.LocateUnit("M1", "-4e1", "-8.3e1")),
        (
            "call new x -p 1 -l y --lat -1E-3 --lon -.5",
            c.NewCall(CallIntake(nature="x", location="y", priority="1", lat="-1E-3", lon="-.5")),
        ),
        # Verbs in any case, as the shorthands are (caps lock at the bar).
        ("SHOW CALLS", c.Show("calls")),
        ("Call Show C-7", c.ShowCall("C-7")),
        ("UNIT STATUS M1 ON_SCENE", c.SetUnitStatus("M1", "ON_SCENE")),
    ],
)
def test_valid_lines_once_refused(line: str, expected: c.Command) -> None:
    assert parse_line(line) == expected


def test_a_decimal_comma_reaches_the_check_that_names_it() -> None:
    # It was "the following arguments are required: lon"; now the position check says what is wrong.
    assert parse_line("loc M1 40,5 -82,99") == c.LocateUnit("M1", "40,5", "-82,99")


def test_report_breakdown_in_any_case() -> None:
    assert build_parser().parse_args(["report", "--by", "Unit"]).by == "unit"
