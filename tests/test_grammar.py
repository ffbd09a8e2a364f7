"""One grammar for the CLI and the command bar: shorthands, canonical verbs, clear errors."""

from __future__ import annotations

import pytest

from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.grammar import expand, parse_line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("d C-1042 M12 M7", {"verb": "dispatch", "call": "C-1042", "units": ["M12", "M7"]}),
        ("D c1042 m12 --hospital mercy", {"verb": "dispatch", "hospital": "mercy"}),
        ("os M12", {"verb": "unit.status", "unit": "M12", "status": "ON_SCENE"}),
        ("en M12", {"verb": "unit.status", "status": "EN_ROUTE"}),
        ("tx M12 MERCY", {"verb": "unit.status", "status": "TRANSPORTING", "hospital": "MERCY"}),
        ("tx M12", {"verb": "unit.status", "status": "TRANSPORTING", "hospital": None}),
        ("ah M12", {"verb": "unit.status", "status": "AT_HOSPITAL"}),
        ("av M12", {"verb": "unit.status", "status": "AVAILABLE"}),
        ("oos M12", {"verb": "unit.status", "status": "OUT_OF_SERVICE"}),
        ("unit status M12 on-scene", {"verb": "unit.status", "status": "ON_SCENE"}),
        ("cx M12 --reason 'wrong address'", {"verb": "unit.cancel", "reason": "wrong address"}),
        (
            "hs MERCY diversion --beds 0",
            {"verb": "hospital.status", "status": "diversion", "beds": "0"},
        ),
        (
            "call new 'chest pain' -p 1 --place 'Riverton Mall'",
            {"verb": "call.new", "nature": "chest pain"},
        ),
        ("rec C-1042", {"verb": "recommend", "call": "C-1042"}),
        ("show units", {"verb": "show", "what": "units"}),
    ],
)
def test_bar_lines_parse_to_the_cli_verbs(line: str, expected: dict[str, object]) -> None:
    ns = parse_line(line)
    assert {k: getattr(ns, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "type a command"),
        ("d", "required"),
        ("zap M12", "unknown command .zap."),
        ("unit status M12 parked", "not a unit status"),
        ("d C-1 M1 'unclosed", "cannot read that line"),
        ("show units --help", "unrecognized arguments"),
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
