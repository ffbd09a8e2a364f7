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
    assert json.loads(done.stdout) == {
        "ok": True,
        "message": "0 calls",
        "calls": [],
        "truncated": False,
        "total": 0,
    }
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


# -- honest outcomes: secrets, typed answers, small ones --------------------------------------------

SECRET_URL = "postgresql://u:hunter2@127.0.0.1:1/dispatch"


@pytest.mark.parametrize(
    ("argv", "environment_url"),
    [
        (["--db=" + SECRET_URL, "show", "calls"], None),
        (["--db", SECRET_URL, "show", "calls"], None),
        (["show", "calls", "--db=" + SECRET_URL], None),
        (["call", "new", "x", "-l", "postgresql://v:hunter2@db/x", "-p", "1"], SECRET_URL),
    ],
    ids=["--db=URL", "--db URL", "after the verb", "in a value and the environment"],
)
def test_the_log_holds_no_password_and_only_its_owner_reads_it(  # type: ignore[no-untyped-def]
    capsys, monkeypatch, tmp_path, argv: list[str], environment_url: str | None
) -> None:
    import importlib
    import stat

    def broken(url: str | None, *args: object, **kwargs: object) -> None:
        # A driver's message may quote the URL: the log must not.
        raise RuntimeError(f"cannot use {url}")

    monkeypatch.setattr(importlib.import_module("dispatch_tui.cli.main"), "open_database", broken)
    log_file = tmp_path / "logs" / "dispatch-tui.log"
    monkeypatch.setenv("DISPATCH_LOG_FILE", str(log_file))
    if environment_url:
        monkeypatch.setenv("DISPATCH_DATABASE_URL", environment_url)
    else:
        monkeypatch.delenv("DISPATCH_DATABASE_URL", raising=False)
    code, _, err = run(capsys, *argv)
    assert (code, err) == (1, f"error: unexpected error; details in {log_file}\n")
    text = log_file.read_text(encoding="utf-8")
    assert "cannot use" in text and "u:***@" in text  # the failure is there, its password not
    assert "hunter2" not in text
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "0001-01-01"], "'0001-01-01' is out of range (years 1900 to 9998)"),
        (["--until", "0001-01-01"], "'0001-01-01' is out of range (years 1900 to 9998)"),
        (
            ["--since", "2026-01-01T00:00:00-23:59"],
            "'2026-01-01T00:00:00-23:59' has a UTC offset out of range (from -15:59 to +15:59)",
        ),
        (
            ["--until", "2026-01-01T00:00:00+20:00"],
            "'2026-01-01T00:00:00+20:00' has a UTC offset out of range (from -15:59 to +15:59)",
        ),
    ],
)
def test_report_refuses_times_postgresql_would_not_take(  # type: ignore[no-untyped-def]
    db_env, capsys, args: list[str], message: str
) -> None:
    assert run(capsys, "report", *args) == (2, "", f"error: {message}\n")


def _snapshot(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with engine.connect() as conn:
        return {
            table: conn.execute(
                text(f"SELECT coalesce(string_agg(t::text, '|' ORDER BY t.id), '') FROM {table} t")
            ).scalar_one()
            for table in ("units", "assignments", "calls", "audit_log")
        }


@pytest.mark.parametrize(
    ("status", "command"),
    [
        ("ON_SCENE", ["os", "M6"]),
        ("ON_SCENE", ["tx", "M6", "MERCY"]),
        ("ON_SCENE", ["av", "M6"]),
        ("EN_ROUTE", ["en", "M6"]),
        ("EN_ROUTE", ["os", "M6"]),
        ("EN_ROUTE", ["cx", "M6"]),
        ("TRANSPORTING", ["ah", "M6"]),
    ],
)
def test_a_busy_unit_on_no_call_is_a_conflict_that_names_it(  # type: ignore[no-untyped-def]
    world: DispatchService, engine, db_env, capsys, status: str, command: list[str]
) -> None:
    from sqlalchemy import text

    # A direct SQL change, as the README allows a dispatcher's login.
    with engine.begin() as conn:
        conn.execute(text("UPDATE units SET status = :s WHERE code = 'M6'"), {"s": status})
    before = _snapshot(engine)
    label = status.lower().replace("_", " ")
    assert run(capsys, *command) == (
        4,
        "",
        f"error: M6 is {label} but on no call; its status was changed outside the desk: "
        "correct it in the database\n",
    )
    assert _snapshot(engine) == before


@pytest.mark.parametrize("command", [["os", "M6"], ["oos", "M6"], ["en", "M6"], ["cx", "M6"]])
def test_a_free_unit_still_on_a_call_is_a_conflict_that_names_it(  # type: ignore[no-untyped-def]
    world: DispatchService, engine, db_env, capsys, command: list[str]
) -> None:
    from sqlalchemy import text

    number = world.create_call("alice", _intake()).number
    world.dispatch("alice", number, ["M6"])
    with engine.begin() as conn:
        conn.execute(text("UPDATE units SET status = 'AVAILABLE' WHERE code = 'M6'"))
    before = _snapshot(engine)
    assert run(capsys, *command) == (
        4,
        "",
        f"error: M6 is available but still on {number}; its status was changed outside the "
        f"desk: cancel {number} to release it, or correct it in the database\n",
    )
    assert _snapshot(engine) == before
    # The way out it names works.
    assert run(capsys, "call", "cancel", number)[0] == 0
    (m6,) = [u for u in world.units() if u.code == "M6"]
    assert (m6.status, m6.call_number) == ("AVAILABLE", None)


@pytest.mark.parametrize("leading", [["--as=alice"], ["--db={url}"], ["--db={url}", "--as=bob"]])
def test_shorthands_after_options_written_with_equals(  # type: ignore[no-untyped-def]
    world: DispatchService, db_env, capsys, database_url: str, leading: list[str]
) -> None:
    number = world.create_call("alice", _intake()).number
    words = [word.format(url=database_url) for word in leading]
    code, _, err = run(capsys, *words, "d", number, "M4")
    assert (code, err) == (0, "")
    assert world.call(number).active_units == ("M4",)


def test_an_abbreviated_json_flag_gets_the_json_error(  # type: ignore[no-untyped-def]
    world: DispatchService, db_env, capsys
) -> None:
    code, out, err = run(capsys, "--js", "d", "C-4242", "M1")
    assert (code, err) == (3, "error: no call C-4242\n")
    assert json.loads(out)["error"] == {
        "kind": "not_found",
        "message": "no call C-4242",
        "exit_code": 3,
    }


@pytest.mark.parametrize(
    "command",
    [
        ["unit", "locate", "M2", "40", "-83."],  # was "the following arguments are required: lon"
        ["loc", "M2", "4e1", "-8.3e1"],
        ["SHOW", "UNITS"],  # was "unknown command 'SHOW'"
        ["show", "Units"],
        ["report", "--by", "Unit"],
    ],
)
def test_valid_requests_once_answered_invalid_input(  # type: ignore[no-untyped-def]
    world: DispatchService, db_env, capsys, command: list[str]
) -> None:
    code, _, err = run(capsys, *command)
    assert (code, err) == (0, "")


LEAVE_IT_OUT = " (leave it out to run until Ctrl-C)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "nan"], "--duration must be above 0, at most 31622400 seconds, not nan"),
        (["--duration", "inf"], "--duration must be above 0, at most 31622400 seconds, not inf"),
        (["--duration", "-1"], "--duration must be above 0, at most 31622400 seconds, not -1"),
        (["--speed", "nan"], "--speed must be above 0, at most 3600, not nan"),
        (["--speed", "-inf"], "--speed must be above 0, at most 3600, not -inf"),
        (["--calls-per-hour", "nan"], "--calls-per-hour must be 0–3600, not nan"),
    ],
)
def test_simulate_refuses_numbers_that_never_end(  # type: ignore[no-untyped-def]
    capsys, monkeypatch, tmp_path, args: list[str], message: str
) -> None:
    # Refused before any database is opened: this one cannot be reached.
    monkeypatch.setenv("DISPATCH_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("DISPATCH_LOG_FILE", str(tmp_path / "log"))
    tail = LEAVE_IT_OUT if args[0] == "--duration" else ""
    assert run(capsys, "simulate", *args) == (2, "", f"error: {message}{tail}\n")
