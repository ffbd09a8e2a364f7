"""Crew alerts: the outbox the triggers fill, the acknowledgement, and the alerter that delivers.

The outbox holds an alert exactly when its change committed (a rolled-back dispatch leaves
none); the alerter delivers each at least once, never two at a time, retries a sender that fails
or hangs and finally marks the alert failed, and loses nothing when it is killed with SIGKILL at
random moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as psql
from sqlalchemy import Engine, text

from dispatch_tui.cli import main
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.rules.errors import Conflict, Forbidden, InvalidInput
from dispatch_tui.service.alerter import Alerter, SenderSettings
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call, new_calls
from tests.test_roles import Login, as_login, libpq, logins, refused

__all__ = ["logins"]  # a fixture, used by name

# A sender that takes every alert: appends its line to the file named by $ALERT_LOG.
TAKES = ("sh", "-c", 'cat >> "$ALERT_LOG"')


def _alerts(engine: Engine, where: str = "true") -> list[tuple[str, str, str, str]]:
    """(kind, unit, call, state) of every alert, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.kind, u.code, c.number, a.state FROM alerts a"
                " JOIN units u ON u.id = a.unit_id JOIN calls c ON c.id = a.call_id"
                f" WHERE {where} ORDER BY a.id"
            )
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def alert_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("ALERT_LOG", str(path))
    return path


# -- the outbox ------------------------------------------------------------------------------------


def test_each_dispatch_divert_promotion_and_cancel_writes_its_alert(
    world: DispatchService, engine: Engine
) -> None:
    first, second, third = new_calls(world, 3)
    world.dispatch("alice", first, ["M1"])
    assert _alerts(engine) == [("dispatch", "M1", first, "pending")]
    world.divert("alice", "M1", second)  # stands down from the first, goes to the second
    assert _alerts(engine)[1:] == [
        ("stand_down", "M1", first, "pending"),
        ("dispatch", "M1", second, "pending"),
    ]
    world.unit_status("alice", "M1", "ON_SCENE")
    world.queue("alice", "M1", third)
    world.unit_status("alice", "M1", "AVAILABLE")  # promoted to its lined-up call
    assert _alerts(engine)[3:] == [("dispatch", "M1", third, "pending")]
    world.cancel_call("alice", third, "caller called back: not needed")
    assert _alerts(engine)[4:] == [("stand_down", "M1", third, "pending")]


def test_the_alert_carries_what_the_crew_needs(
    world: DispatchService, engine: Engine, alert_log: Path
) -> None:
    number = new_call(world, caller_phone="555-0100", determinant="10-D-1")
    world.dispatch("alice", number, ["M1"], hospital="MERCY")
    Alerter(engine, SenderSettings(TAKES)).deliver_due()
    (payload,) = _lines(alert_log)
    with engine.connect() as conn:
        uid = conn.execute(text("SELECT uid::text FROM alerts")).scalar_one()
    assert payload["id"] == uid and payload["kind"] == "dispatch"
    assert payload["call"] == number and payload["unit"] == "M1"
    assert payload["priority"] == 1 and payload["determinant"] == "10-D-1"
    assert payload["nature"] == "Chest pain" and payload["callback"] == "555-0100"
    assert payload["destination"] == "MERCY" and payload["location"]
    assert uid is not None


def test_a_rolled_back_dispatch_leaves_no_alert(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    with engine.connect() as conn:
        conn.execute(
            text(
                "INSERT INTO assignments (call_id, unit_id, notified_at)"
                " SELECT c.id, u.id, now() FROM calls c, units u"
                " WHERE c.number = :n AND u.code = 'M1'"
            ),
            {"n": number},
        )
        assert conn.execute(text("SELECT count(*) FROM alerts")).scalar_one() == 1
        conn.rollback()
    assert _alerts(engine) == []
    # A refused dispatch (the unit is busy) writes nothing either.
    world.dispatch("alice", number, ["M1"])
    other = new_call(world)
    with pytest.raises(Conflict):
        world.dispatch("alice", other, ["M1"])
    assert _alerts(engine) == [("dispatch", "M1", number, "pending")]


def test_nobody_writes_alerts_by_hand_yet_every_dispatch_writes_one(
    logins: Callable[..., Login], world: DispatchService, engine: Engine
) -> None:
    name, url = logins("dispatcher")
    own = make_engine(url, pool_size=1)
    try:
        number = new_call(world)
        DispatchService(make_sessionmaker(own)).dispatch(name, number, ["M1"])
    finally:
        own.dispose()
    assert _alerts(engine) == [("dispatch", "M1", number, "pending")]
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        assert refused(conn, "UPDATE alerts SET state = 'sent'")
        assert refused(
            conn,
            "INSERT INTO alerts (assignment_id, call_id, unit_id, kind)"
            " SELECT id, call_id, unit_id, 'dispatch' FROM assignments",
        )
        assert refused(conn, "DELETE FROM alerts")


# -- acknowledgement ---------------------------------------------------------------------------


def test_the_crew_acknowledges_by_the_servers_clock_once(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    call = world.acknowledge("carol", "M1")  # carol crews M1
    (assignment,) = call.assignments
    assert assignment.acknowledged_at is not None
    assert assignment.acknowledged_at >= assignment.notified_at
    with pytest.raises(Conflict, match=r"acknowledged .* already"):
        world.acknowledge("alice", "M1")
    # Even a direct write cannot move it: the trigger keeps the first.
    with engine.begin() as conn:
        conn.execute(text("UPDATE assignments SET acknowledged_at = '2000-01-01'"))
    assert world.call(number).assignments[0].acknowledged_at == assignment.acknowledged_at
    texts = [e.text for e in world.record(number).timeline]
    assert "M1 acknowledged the dispatch" in texts


def test_only_the_units_crew_or_a_dispatcher_acknowledges(
    world: DispatchService, count: object
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    with pytest.raises(Forbidden):
        world.acknowledge("dave", "M1")  # dave crews M3
    with pytest.raises(Forbidden):
        world.acknowledge("grace", "M1")  # a supervisor
    with pytest.raises(Conflict, match="on no call"):
        world.acknowledge("dave", "M3")
    assert world.call(number).assignments[0].acknowledged_at is None


def test_unit_ack_on_the_cli(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    assert main(["unit", "ack", "M1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (unit,) = document["call"]["assignments"]
    assert unit["acknowledged_at"] and unit["alert_state"] == "pending"
    assert main(["call", "show", number, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["call"]["assignments"][0]["acknowledged_at"] == unit["acknowledged_at"]


# -- delivery --------------------------------------------------------------------------------


def test_the_alerter_delivers_each_alert_with_its_stable_id(
    world: DispatchService, engine: Engine, alert_log: Path
) -> None:
    calls = new_calls(world, 2)
    world.dispatch("alice", calls[0], ["M1"])
    world.dispatch("alice", calls[1], ["M3"])
    done = Alerter(engine, SenderSettings(TAKES)).deliver_due()
    assert [d.sent for d in done] == [True, True]
    sent = _lines(alert_log)
    assert [(m["unit"], m["call"], m["kind"], m["attempt"]) for m in sent] == [
        ("M1", calls[0], "dispatch", 1),
        ("M3", calls[1], "dispatch", 1),
    ]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT uid::text, state, attempts FROM alerts ORDER BY id")).all()
    assert [(r[1], r[2]) for r in rows] == [("sent", 1), ("sent", 1)]
    assert [m["id"] for m in sent] == [r[0] for r in rows]
    assert world.call(calls[0]).assignments[0].alert_state == "sent"
    assert Alerter(engine, SenderSettings(TAKES)).deliver_due() == []  # nothing sent twice


def test_a_dispatch_not_acknowledged_is_paged_again_once(
    world: DispatchService, engine: Engine, alert_log: Path
) -> None:
    """A crew that has not acknowledged its dispatch `remind_after` seconds after the alert
    went out is paged again, once; a crew that acknowledged (or reported en route) is not."""
    first, second, third = new_calls(world, 3)
    world.dispatch("alice", first, ["M1"])
    world.dispatch("alice", second, ["M3"])
    world.dispatch("alice", third, ["M4"])
    alerter = Alerter(engine, SenderSettings(TAKES, remind_after=0.3))
    assert [d.kind for d in alerter.deliver_due()] == ["dispatch"] * 3
    world.acknowledge("alice", "M3")  # heard on the radio
    world.unit_status("alice", "M4", "EN_ROUTE")  # the crew's en-route report: it has the call
    assert alerter.remind(every=0) == 0  # not due yet
    time.sleep(0.5)
    done = alerter.deliver_due()
    assert [(d.unit, d.kind, d.state) for d in done] == [("M1", "reminder", "sent")]
    time.sleep(0.5)
    assert alerter.deliver_due() == []  # once: past it, the dispatcher chases on the radio
    assert [(m["unit"], m["kind"], m["call"]) for m in _lines(alert_log)][3:] == [
        ("M1", "reminder", first)
    ]
    texts = [e.text for e in world.record(first).timeline if e.source == "alert"]
    assert texts == ["alert to M1 sent", "reminder (not acknowledged) to M1 sent"]


def test_a_reminder_the_crew_no_longer_needs_is_not_sent(
    world: DispatchService, engine: Engine, alert_log: Path
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    alerter = Alerter(engine, SenderSettings(TAKES, remind_after=0.2))
    alerter.deliver_due()
    time.sleep(0.4)
    assert alerter.remind(every=0) == 1  # written, not yet sent
    world.acknowledge("carol", "M1")
    (done,) = alerter.deliver_due()
    assert (done.kind, done.state) == ("reminder", "superseded")
    assert done.error == "the crew had the call before it was sent"
    assert [m["kind"] for m in _lines(alert_log)] == ["dispatch"]
    # Without reminders (DISPATCH_ALERT_REMIND_SECONDS=0), none is ever written.
    settings = SenderSettings.from_env(
        {"DISPATCH_ALERT_COMMAND": "true", "DISPATCH_ALERT_REMIND_SECONDS": "0"}
    )
    assert settings.remind_after is None
    assert SenderSettings.from_env({"DISPATCH_ALERT_COMMAND": "true"}).remind_after == 30
    with pytest.raises(InvalidInput, match="DISPATCH_ALERT_REMIND_SECONDS must be"):
        SenderSettings.from_env(
            {"DISPATCH_ALERT_COMMAND": "true", "DISPATCH_ALERT_REMIND_SECONDS": "-1"}
        )


def test_reminders_that_cannot_be_written_never_hold_up_the_alerts(
    world: DispatchService, engine: Engine, alert_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reminders' function missing (or not granted to the alerter's login): the dispatch
    alerts still go, the reminders' times stop waking the workers, and it is said once."""
    from dispatch_tui.service import alerter as alerting

    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    monkeypatch.setattr(alerting, "_REMIND", text("SELECT no_such_function(:after)"))
    alerter = Alerter(engine, SenderSettings(TAKES, remind_after=0.1))
    (sent,) = alerter.deliver_due()
    assert (sent.kind, sent.state) == ("dispatch", "sent")
    time.sleep(0.3)
    assert alerter.remind(every=0) == 0
    assert alerter._next_due() >= 1.0  # the poll's pace, not a quarter-second loop
    assert [m["kind"] for m in _lines(alert_log)] == ["dispatch"]


def test_a_failing_sender_is_retried_then_the_alert_fails_loudly(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    failing = SenderSettings(
        ("sh", "-c", "echo 'gateway said no' >&2; exit 3"), attempts=3, backoff=0.05
    )
    alerter = Alerter(engine, failing)
    tried: list[str] = []
    deadline = time.monotonic() + 30
    while len(tried) < 3 and time.monotonic() < deadline:
        tried += [d.state for d in alerter.deliver_due()]
        time.sleep(0.05)
    assert tried == ["pending", "pending", "failed"]
    (a,) = world.call(number).assignments
    assert a.alert_state == "failed" and a.alert_attempts == 3
    assert a.alert_error == "exit 3: gateway said no"
    time.sleep(0.2)
    assert alerter.deliver_due() == []  # failed for good: not tried again


def test_a_hanging_sender_is_stopped_and_tried_again(
    world: DispatchService, engine: Engine, alert_log: Path, tmp_path: Path
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    # Hangs on the first try (its child too: the whole group is killed), takes the second.
    marker = tmp_path / "tried"
    script = f'if [ -e "{marker}" ]; then cat >> "$ALERT_LOG"; else touch "{marker}"; sleep 60; fi'
    alerter = Alerter(engine, SenderSettings(("sh", "-c", script), timeout=0.5, backoff=0.05))
    started = time.monotonic()
    (first,) = alerter.deliver_due()
    assert time.monotonic() - started < 30
    assert not first.sent and first.state == "pending"
    assert first.error == "no answer in 0.5 s (the sender was stopped)"
    time.sleep(0.1)
    (second,) = alerter.deliver_due()
    assert second.sent and second.attempt == 2
    assert [m["call"] for m in _lines(alert_log)] == [number]


def test_a_sender_that_cannot_start_is_a_failed_attempt(
    world: DispatchService, engine: Engine
) -> None:
    world.dispatch("alice", new_call(world), ["M1"])
    alerter = Alerter(engine, SenderSettings(("/nonexistent/pager",), attempts=1))
    (d,) = alerter.deliver_due()
    assert (
        d.state == "failed" and d.error is not None and "cannot run /nonexistent/pager" in d.error
    )


def test_two_alerters_never_send_the_same_alert_at_once(
    world: DispatchService, engine: Engine, tmp_path: Path, alert_log: Path
) -> None:
    units = ["M1", "M2", "M3", "M4", "M5", "M6"]
    numbers = new_calls(world, len(units))
    for number, unit in zip(numbers, units, strict=True):
        world.dispatch("alice", number, [unit])
    # The sender holds a directory named by the alert's id while it "sends": a second sender of
    # the same alert at the same time finds it there, and says so in the log.
    script = (
        'read -r line; id=$(printf "%s" "$line" | sed \'s/.*"id":"\\([^"]*\\)".*/\\1/\'); '
        f'if mkdir "{tmp_path}/$id" 2>/dev/null; then sleep 0.1; rmdir "{tmp_path}/$id"; '
        'printf "%s\\n" "$line" >> "$ALERT_LOG"; else echo "OVERLAP $id" >> "$ALERT_LOG"; fi'
    )
    settings = SenderSettings(("sh", "-c", script), workers=3)
    stop = threading.Event()
    alerters = [Alerter(engine, settings) for _ in range(2)]
    threads = [threading.Thread(target=a.run, args=(stop,)) for a in alerters]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(_alerts(engine, "state = 'sent'")) < len(units) and time.monotonic() < deadline:
        alerters[0].wake()
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    text_log = alert_log.read_text()
    assert "OVERLAP" not in text_log
    sent = _lines(alert_log)
    assert sorted(str(m["unit"]) for m in sent) == units  # each exactly once
    assert len(_alerts(engine, "state = 'sent'")) == len(units)


def test_the_alerter_wakes_on_the_notification(
    world: DispatchService, engine: Engine, database_url: str, alert_log: Path
) -> None:
    alerter = Alerter(engine, SenderSettings(TAKES), listen_url=database_url)
    stop = threading.Event()
    thread = threading.Thread(target=alerter.run, args=(stop,))
    thread.start()
    try:
        time.sleep(0.5)  # listening, and idle until the next poll (5 s)
        number = new_call(world)
        world.dispatch("alice", number, ["M1"])
        deadline = time.monotonic() + 4  # well before the poll would find it
        while not _lines(alert_log) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [m["call"] for m in _lines(alert_log)] == [number]
    finally:
        stop.set()
        thread.join()


ALERTER_KILLS = int(os.environ.get("DISPATCH_ALERTER_KILLS", "12"))


def test_an_alerter_killed_at_random_loses_no_alert(
    world: DispatchService, engine: Engine, db_env: dict[str, str], alert_log: Path
) -> None:
    """SIGKILL at random moments, over and over, while alerts are delivered: every alert is
    delivered at least once, and each ends sent (but a dispatch overtaken before it left)."""
    units = ["M1", "M2", "M3", "M4", "M5", "M6", "B1", "B2", "B3", "B4", "B5", "B6"]
    for number, unit in zip(new_calls(world, len(units)), units, strict=True):
        world.dispatch("alice", number, [unit])
    for unit in units[:6]:  # diverted before any alert left: a stand-down and a new dispatch
        world.divert("alice", unit, new_call(world))
    overtaken = 6  # the diverted units' first dispatches: never sent
    expected = len(_alerts(engine)) - overtaken
    env = {
        **db_env,
        "ALERT_LOG": str(alert_log),
        # Each delivery takes a while, so kills land mid-delivery as well as between.
        "DISPATCH_ALERT_COMMAND": "sh -c 'sleep 0.2; cat >> \"$ALERT_LOG\"'",
        "DISPATCH_ALERT_WORKERS": "2",
        # No reminders: a slow run must not page the crews again and change the count.
        "DISPATCH_ALERT_REMIND_SECONDS": "0",
    }
    rng = random.Random(7)
    command = [sys.executable, "-m", "dispatch_tui", "alerter"]
    kills = 0
    for _ in range(ALERTER_KILLS):
        before = len(_lines(alert_log))
        if before >= expected:
            break
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        # Killed once it is delivering (its first delivery of this run is in), at a random
        # moment after: often mid-way through the next one.
        deadline = time.monotonic() + 30
        while len(_lines(alert_log)) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 3  # (it was killed, more than once, while delivering)
    # Then one that is left to finish.
    done = subprocess.run(
        [*command, "--once"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(_alerts(engine, "state = 'sent'")) == expected
    assert len(_alerts(engine, "state = 'superseded' AND kind = 'dispatch'")) == overtaken
    delivered = {str(m["id"]) for m in _lines(alert_log)}
    with engine.connect() as conn:
        ids = {r[0] for r in conn.execute(text("SELECT uid::text FROM alerts")).all()}
        overtaken_ids = {
            r[0]
            for r in conn.execute(
                text("SELECT uid::text FROM alerts WHERE state = 'superseded'")
            ).all()
        }
    assert delivered == ids - overtaken_ids  # every one at least once, none overtaken


def test_the_alerter_refuses_to_start_without_a_sender(
    db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPATCH_ALERT_COMMAND", raising=False)
    assert main(["alerter", "--once"]) == 2
    assert "set DISPATCH_ALERT_COMMAND" in capsys.readouterr().err


# -- on the desk -----------------------------------------------------------------------------


async def test_the_desk_shows_a_failed_alert_loudly_until_the_crew_acknowledges(
    world: DispatchService, engine: Engine, database_url: str
) -> None:
    from textual.widgets._data_table import ColumnKey

    from tests.desk_helpers import desk, screen_of, until

    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:

        def units_cell() -> str:
            active = screen_of(app).active
            row = next((c for c in active.rows_by_key.values() if c.number == number), None)
            if row is None:
                return ""
            return active.get_row(str(row.id))[3].plain

        await until(pilot, lambda: units_cell().startswith("M1"))
        assert "ALERT FAILED" not in units_cell()
        failing = SenderSettings(("sh", "-c", "exit 1"), attempts=1)
        (d,) = Alerter(engine, failing).deliver_due()  # another process, as a real alerter
        assert d.state == "failed"
        await until(pilot, lambda: "ALERT FAILED" in units_cell())
        # The column widened to it: what was added is not cut off.
        width = screen_of(app).active.columns[ColumnKey("units")].width
        assert width >= len(units_cell()), (width, units_cell())
        world.acknowledge("carol", "M1")  # the crew was reached another way
        await until(pilot, lambda: "ALERT FAILED" not in units_cell())
        (a,) = world.call(number).assignments
        assert a.acknowledged_at is not None


def test_the_record_tells_how_each_alert_went(world: DispatchService, engine: Engine) -> None:
    first, second = new_calls(world, 2)
    world.dispatch("alice", first, ["M1"])
    world.divert("alice", "M1", second)  # a stand-down from the first
    failing = SenderSettings(("sh", "-c", "echo 'gateway down' >&2; exit 1"), attempts=1)
    Alerter(engine, failing).deliver_due()
    texts = [e.text for e in world.record(first).timeline if e.source == "alert"]
    assert texts == [
        # Overtaken before it was tried: not sent (the crew is not paged to the first call).
        "alert to M1 not sent: the unit was stood down before it was sent",
        "stand-down alert to M1 FAILED after 1 try: exit 1: gateway down",
    ]
    assert [e.text for e in world.record(second).timeline if e.source == "alert"] == [
        "alert to M1 FAILED after 1 try: exit 1: gateway down"
    ]


def test_a_units_alerts_leave_in_order(
    world: DispatchService, engine: Engine, alert_log: Path, tmp_path: Path
) -> None:
    """A stand-down never reaches the crew before the dispatch it stands down: while a second
    unit's dispatch waits to be tried again, that unit's stand-down waits behind it."""
    first, second = new_calls(world, 2)
    world.dispatch("alice", first, ["M1"])
    world.dispatch("alice", second, ["M3"])
    marker = tmp_path / "failed-once"
    script = (
        'read -r line; case "$line" in *\'"unit":"M3"\'*) '
        f'if [ ! -e "{marker}" ]; then touch "{marker}"; exit 1; fi;; esac; '
        'printf "%s\\n" "$line" >> "$ALERT_LOG"'
    )
    alerter = Alerter(engine, SenderSettings(("sh", "-c", script), backoff=2.0))
    assert [(d.unit, d.state) for d in alerter.deliver_due()] == [
        ("M1", "sent"),
        ("M3", "pending"),  # failed once: tried again after its backoff
    ]
    world.cancel_unit("alice", "M1", "not needed")
    # The gateway may have paged M3's crew on the failed try: once M3 is stood down, its
    # dispatch is not tried again, and the stand-down follows it.
    world.cancel_unit("alice", "M3", "not needed")
    # M3's dispatch is not due again yet (2 s): its stand-down waits behind it.
    assert [(d.unit, d.kind, d.state) for d in alerter.deliver_due()] == [
        ("M1", "stand_down", "sent")
    ]
    deadline = time.monotonic() + 20
    while len(_lines(alert_log)) < 3 and time.monotonic() < deadline:
        alerter.deliver_due()
        time.sleep(0.1)
    assert [(m["unit"], m["kind"]) for m in _lines(alert_log)] == [
        ("M1", "dispatch"),
        ("M1", "stand_down"),
        ("M3", "stand_down"),
    ]
    assert _alerts(engine, "a.unit_id = (SELECT id FROM units WHERE code = 'M3')") == [
        ("dispatch", "M3", second, "superseded"),
        ("stand_down", "M3", second, "sent"),
    ]
    (m3,) = world.call(second).assignments
    assert m3.alert_state == "superseded"
    assert m3.alert_error == (
        "the unit was stood down before it went through; not tried again after 1 try (the "
        "crew may have been paged); its last try: exit 1"
    )


def test_the_alerter_runs_under_its_own_login(
    world: DispatchService, database_url: str, alert_log: Path
) -> None:
    """A login with the `dispatch_alerter` role alone, as the README sets one up, reads what an
    alert tells (row security included) and records the delivery."""
    name = f"t{uuid.uuid4().hex[:8]}_alerter"
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute(
            psql.SQL("CREATE ROLE {} LOGIN IN ROLE dispatch_alerter").format(psql.Identifier(name))
        )
    own = make_engine(as_login(database_url, name), pool_size=1)
    try:
        number = new_call(world)
        world.dispatch("alice", number, ["M1"])
        (sent,) = Alerter(own, SenderSettings(TAKES)).deliver_due()
        assert sent.sent and sent.call == number
        assert [m["call"] for m in _lines(alert_log)] == [number]
        assert world.call(number).assignments[0].alert_state == "sent"
    finally:
        own.dispose()
        with psycopg.connect(libpq(database_url), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
            conn.execute(psql.SQL("DROP ROLE {}").format(psql.Identifier(name)))


def test_call_show_prints_the_alerts_in_the_timeline(
    world: DispatchService,
    engine: Engine,
    db_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    Alerter(engine, SenderSettings(("sh", "-c", "exit 1"), attempts=1)).deliver_due()
    capsys.readouterr()
    assert main(["call", "show", number]) == 0
    out = capsys.readouterr().out
    assert "alert to M1 FAILED after 1 try: exit 1" in out
