"""The CLI as scripts use it: verbs, `--json`, exit codes, one `error:` line, no tracebacks.

Most tests call `main()` in-process (fast); a few run the real `python -m dispatch_tui` in a
subprocess so the entry point, the environment and the exit status are exercised end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dispatch_tui.cli import main
from dispatch_tui.service.dispatch_service import DispatchService


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_shift_from_the_command_line(world: DispatchService, db_env, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(
        capsys, "--json", "call", "new", "Chest pain", "--place", "riverton mall", "-p", "1"
    )
    assert code == 0
    number = json.loads(out)["call"]["number"]

    steps = [
        ["d", number, "m1", "--hospital", "MERCY"],
        ["en", "M1"],
        ["os", "M1"],
        ["tx", "M1"],
        ["ah", "M1"],
        ["av", "M1"],
    ]
    for step in steps:
        code, out, err = run(capsys, *step)
        assert (code, err) == (0, ""), step
    code, out, _ = run(capsys, "--json", "call", "show", number)
    call = json.loads(out)["call"]
    assert call["status"] == "CLOSED"
    (a,) = call["assignments"]
    assert all(
        a[k]
        for k in (
            "notified_at",
            "en_route_at",
            "on_scene_at",
            "transporting_at",
            "at_destination_at",
            "cleared_at",
        )
    )
    code, out, _ = run(capsys, "--json", "audit", "--call", number)
    actions = [e["action"] for e in json.loads(out)["audit"]]
    assert actions.count("unit_status") == 5 and actions[-1] == "call_status"


@pytest.mark.parametrize(
    ("args", "code", "kind"),
    [
        (["dispatch", "C-1", "M1"], 3, "not_found"),
        (["dispatch", "nonsense", "M1"], 2, "invalid"),
        (["unit", "status", "M1", "flying"], 2, "invalid"),
        (["unit", "status", "M1", "on_scene"], 4, "conflict"),
        (["--as", "carol", "call", "new", "x", "-l", "here", "-p", "1"], 5, "forbidden"),
        (["unit", "locate", "M1", "91", "0"], 2, "invalid"),
        (["hospital", "status", "MERCY", "sideways"], 2, "invalid"),
        (["show", "nothing"], 2, "invalid"),
        (["frobnicate"], 2, "invalid"),
    ],
)
def test_errors_have_stable_exit_codes_and_one_line(  # type: ignore[no-untyped-def]
    world: DispatchService, db_env, capsys, args: list[str], code: int, kind: str
) -> None:
    got, out, err = run(capsys, *args)
    assert got == code
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    got, out, err = run(capsys, "--json", *args)
    document = json.loads(out)
    assert document["ok"] is False
    assert document["error"]["kind"] == kind and document["error"]["exit_code"] == code


def test_conflict_exit_code_names_the_winner(world: DispatchService, db_env, capsys) -> None:  # type: ignore[no-untyped-def]
    a = world.create_call("bob", _intake()).number
    b = world.create_call("bob", _intake()).number
    world.dispatch("bob", a, ["M4"])
    code, _, err = run(capsys, "dispatch", b, "M4")
    assert code == 4
    assert err == f"error: M4 was dispatched to {a} by bob a moment ago\n"


def test_markup_in_data_prints_literally(world: DispatchService, db_env, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, _ = run(
        capsys,
        "call",
        "new",
        "[bold red]Fall[/]",
        "-l",
        "[link=x]1 Main St",
        "-p",
        "3",
        "--caller",
        "[b]Bob",
    )
    assert code == 0
    code, out, _ = run(capsys, "show", "calls")
    assert "[bold red]Fall[/]" in out and "[link=x]1 Main St" in out


def test_show_lists_and_recommend_ranks(world: DispatchService, db_env, capsys) -> None:  # type: ignore[no-untyped-def]
    number = world.create_call("alice", _intake()).number
    code, out, _ = run(capsys, "--json", "show", "units")
    assert code == 0 and len(json.loads(out)["units"]) == 12
    code, out, _ = run(capsys, "--json", "show", "hospitals")
    assert {h["code"] for h in json.loads(out)["hospitals"]} >= {"MERCY", "STJ"}
    code, out, _ = run(capsys, "--json", "recommend", number)
    recs = json.loads(out)["recommendations"]
    assert code == 0 and recs[0]["rank"] == 1 and recs[0]["unit"]["capability"] == "ALS"


def test_unexpected_errors_are_logged_not_shown(
    world: DispatchService, db_env, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(DispatchService, "units", boom)
    code, _, err = run(capsys, "show", "units")
    assert code == 1
    assert err.startswith("error: unexpected error; details in ") and "internal detail" not in err
    log_text = Path(db_env["DISPATCH_LOG_FILE"]).read_text(encoding="utf-8")
    assert "internal detail" in log_text and "show" in log_text


def test_an_unreachable_server_is_exit_code_6(capsys, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DISPATCH_LOG_FILE", str(tmp_path / "log"))
    code, _, err = run(capsys, "--db", "postgresql://nobody@127.0.0.1:1/none", "show", "calls")
    assert code == 6 and err.startswith("error: cannot reach the dispatch database")


def test_the_real_entry_point(world: DispatchService, db_env) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [sys.executable, "-m", "dispatch_tui", "--json", "show", "calls"],
        env=db_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "message": "0 calls", "calls": []}
    done = subprocess.run(
        [sys.executable, "-m", "dispatch_tui", "d", "C-4242", "M1"],
        env=db_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (3, "error: no call C-4242\n")


def test_demo_seed_is_safe_to_repeat(world: DispatchService, db_env, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "--json", "demo", "seed")
    first = json.loads(out)
    code2, out2, _ = run(capsys, "--json", "demo", "seed")
    second = json.loads(out2)
    assert (code, code2) == (0, 0)
    assert first["calls"] == 5 and second["calls"] == 0 and second["units"] == 0
    code, out, _ = run(capsys, "--json", "show", "calls")
    assert len(json.loads(out)["calls"]) == 5


def _intake():  # type: ignore[no-untyped-def]
    from dispatch_tui.rules.validation import CallIntake

    return CallIntake(nature="Unconscious person", place="Central Station", priority=1)
