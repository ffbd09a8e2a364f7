"""The norms and the clocks a supervisor watches, as pure rules: the running clock's format, the
start of a shift, the overdue timers on a controlled "now", the time problems of one assignment,
and a KPI against its goal. (tests/test_board.py computes the KPIs in PostgreSQL.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from dispatch_tui.rules.norms import (
    DEFAULT_TIMERS,
    NORMS,
    TIME_COLUMNS,
    Kpi,
    TimerRule,
    alert_words,
    clock,
    shift_start,
    time_problems,
    timer_rules,
    timers,
)
from dispatch_tui.rules.views import CallView
from tests.helpers import T0, assignment_view, call_view


def after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- the running clock -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0:00"),
        (5, "0:05"),
        (61.9, "1:01"),  # whole seconds, never rounded up ahead of time
        (245, "4:05"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3729, "1:02:09"),
        (36000 + 59, "10:00:59"),
        (-30, "0:00"),  # a clock skewed ahead of the database never shows a negative time
    ],
)
def test_clock(seconds: float, shown: str) -> None:
    assert clock(seconds) == shown


# -- the shift -------------------------------------------------------------------------------------


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time on the machine's own time zone (shifts change on local hours)."""
    return datetime(2026, 3, day, hour, minute).astimezone()


@pytest.mark.parametrize(
    ("now", "start"),
    [
        (local(2, 8, 30), local(2, 7)),
        (local(2, 7), local(2, 7)),  # the change itself belongs to the new shift
        (local(2, 18, 59), local(2, 7)),
        (local(2, 19), local(2, 19)),
        (local(2, 23, 59), local(2, 19)),
        (local(2, 0, 0), local(1, 19)),  # after midnight: the night shift began yesterday
        (local(2, 6, 59), local(1, 19)),
    ],
)
def test_shift_start_day_and_night(now: datetime, start: datetime) -> None:
    assert shift_start(now) == start


@pytest.mark.parametrize(
    ("now", "start"),
    [(local(2, 13), local(2, 6)), (local(2, 22, 30), local(2, 22)), (local(2, 3), local(1, 22))],
)
def test_shift_start_with_three_shifts(now: datetime, start: datetime) -> None:
    assert shift_start(now, starts=(6, 14, 22)) == start


def test_shift_start_reads_any_time_zone_as_local_time() -> None:
    now = local(2, 8, 30)
    assert shift_start(now.astimezone(UTC)) == local(2, 7)


def test_shift_start_is_always_the_latest_change_before_now() -> None:
    for minutes in range(0, 24 * 60, 30):
        moment = local(2, 0) + timedelta(minutes=minutes)
        start = shift_start(moment)
        assert timedelta(0) <= moment - start < timedelta(hours=12)
        assert start.astimezone().hour in (7, 19) and start.minute == 0


# -- overdue timers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "rule", "since", "limit"),
    [
        (call_view(status="RECEIVED", priority=1, received_at=T0), "p1_pending", T0, 60),
        (
            call_view(status="DISPATCHED", assignments=(assignment_view(unit_status="EN_ROUTE"),)),
            "not_en_route",
            T0,  # since the crew was notified
            60,
        ),
        (
            call_view(
                status="ON_SCENE",
                assignments=(
                    assignment_view(
                        unit_status="ON_SCENE", en_route_at=after(-300), on_scene_at=T0
                    ),
                ),
            ),
            "on_scene",
            T0,
            1800,
        ),
        (
            call_view(
                status="AT_HOSPITAL",
                assignments=(
                    assignment_view(
                        unit_status="AT_HOSPITAL",
                        notified_at=after(-3000),
                        on_scene_at=after(-2000),
                        transporting_at=after(-600),
                        at_destination_at=T0,
                    ),
                ),
            ),
            "at_hospital",
            T0,
            1800,
        ),
    ],
    ids=["p1_pending", "not_en_route", "on_scene", "at_hospital"],
)
def test_each_timer_goes_overdue_just_after_its_limit(
    call: CallView, rule: str, since: datetime, limit: int
) -> None:
    (on_time,) = timers([call], after(limit))
    assert (on_time.rule.key, on_time.since, on_time.elapsed) == (rule, since, limit)
    assert not on_time.overdue
    (late,) = timers([call], after(limit + 1))
    assert late.overdue


def test_timers_are_keyed_by_rule_call_and_unit() -> None:
    pending = call_view("C-7", status="RECEIVED", priority=1)
    rolling = call_view(
        "C-8", status="DISPATCHED", assignments=(assignment_view("M4", call_number="C-8"),)
    )
    keys = {t.key: (t.call_number, t.unit_code) for t in timers([pending, rolling], after(10))}
    assert keys == {"p1_pending:C-7:": ("C-7", None), "not_en_route:C-8:M4": ("C-8", "M4")}


@pytest.mark.parametrize(
    "call",
    [
        call_view(status="RECEIVED", priority=2),  # only P1 waits on the pending clock
        call_view(status="DISPATCHED", priority=1),  # dispatched: no longer pending
        call_view(
            status="DISPATCHED",
            assignments=(assignment_view(unit_status="EN_ROUTE", en_route_at=after(30)),),
        ),  # reported en route
        call_view(
            status="TRANSPORTING",
            assignments=(
                assignment_view(unit_status="TRANSPORTING", on_scene_at=T0, transporting_at=T0),
            ),
        ),  # nothing watches the ride
        call_view(
            status="ON_SCENE",
            assignments=(
                assignment_view(unit_status="ON_SCENE", on_scene_at=T0, cleared_at=after(60)),
                assignment_view(unit_status="EN_ROUTE", cancelled_at=after(60)),
            ),
        ),  # cleared and cancelled assignments are over
    ],
    ids=["P2 pending", "P1 dispatched", "en route reported", "transporting", "ended"],
)
def test_nothing_else_is_timed(call: CallView) -> None:
    assert timers([call], after(7200)) == []


def test_most_overdue_first_relative_to_each_limit() -> None:
    # 50 s of a 60 s limit (83 %) comes before 1000 s of a 1800 s limit (56 %)...
    pending = call_view("C-1", status="RECEIVED", priority=1, received_at=after(950))
    on_scene = call_view(
        "C-2",
        status="ON_SCENE",
        assignments=(assignment_view(unit_status="ON_SCENE", call_number="C-2", on_scene_at=T0),),
    )
    assert [t.call_number for t in timers([on_scene, pending], after(1000))] == ["C-1", "C-2"]
    # ...and after 1700 s on scene (94 %) it is the other way round.
    pending = call_view("C-1", status="RECEIVED", priority=1, received_at=after(1650))
    assert [t.call_number for t in timers([pending, on_scene], after(1700))] == ["C-2", "C-1"]


def test_a_centre_sets_its_own_timers() -> None:
    ten_minutes = (TimerRule("on_scene", "on scene", 600),)
    pending = call_view("C-1", status="RECEIVED", priority=1)
    on_scene = call_view(
        "C-2",
        status="ON_SCENE",
        assignments=(assignment_view(unit_status="ON_SCENE", call_number="C-2", on_scene_at=T0),),
    )
    (timer,) = timers([pending, on_scene], after(601), rules=ten_minutes)
    assert (timer.call_number, timer.overdue) == ("C-2", True)
    assert [r.key for r in DEFAULT_TIMERS] == [
        "p1_pending",
        "not_acknowledged",
        "not_en_route",
        "on_scene",
        "at_hospital",
        "alert_failed",
    ]


def test_a_dispatch_not_acknowledged_in_time_is_a_timer_and_said_on_the_unit() -> None:
    waiting = assignment_view("M4", call_number="C-8", acknowledged=False)
    call = call_view("C-8", status="DISPATCHED", assignments=(waiting,))
    (timer, en_route) = timers([call], after(31))
    assert (timer.rule.key, timer.unit_code, timer.overdue) == ("not_acknowledged", "M4", True)
    assert (en_route.rule.key, en_route.overdue) == ("not_en_route", False)
    assert alert_words(waiting, after(30)) == ""
    assert alert_words(waiting, after(31)) == "NO ACK"
    # A centre's own time for it.
    (timer, _) = timers([call], after(31), rules=timer_rules(ack_seconds=45))
    assert not timer.overdue
    assert alert_words(waiting, after(31), ack_seconds=45) == ""
    # Acknowledged, or the crew reported en route (an answer too): no longer watched.
    for answered in (
        assignment_view("M4", call_number="C-8"),
        assignment_view("M4", call_number="C-8", acknowledged=False, en_route_at=after(5)),
    ):
        call = call_view("C-8", status="DISPATCHED", assignments=(answered,))
        assert [t.rule.key for t in timers([call], after(300))] in (["not_en_route"], [])
        assert alert_words(answered, after(300)) == ""


def test_a_failed_alert_is_overdue_at_once_and_first() -> None:
    failed = assignment_view(
        "M2", call_number="C-9", alert_state="failed", alert_at=after(5), acknowledged=False
    )
    call = call_view("C-9", status="DISPATCHED", assignments=(failed,))
    on_scene = call_view(
        "C-2",
        status="ON_SCENE",
        assignments=(assignment_view(unit_status="ON_SCENE", call_number="C-2", on_scene_at=T0),),
    )
    found = timers([on_scene, call], after(6))
    assert (found[0].rule.key, found[0].call_number, found[0].overdue) == (
        "alert_failed",
        "C-9",
        True,
    )
    assert alert_words(failed, after(6)) == "ALERT FAILED"
    # Once the crew has acknowledged (reached another way), the failure no longer matters.
    reached = assignment_view("M2", call_number="C-9", alert_state="failed")
    assert alert_words(reached, after(6)) == ""


# -- time problems of one assignment ---------------------------------------------------------------


def times(**stamps: int | None) -> SimpleNamespace:
    """An assignment's times, in seconds after T0 (None or left out: never happened)."""
    columns = (*(attr for _, _, attr in TIME_COLUMNS), "cancelled_at")
    return SimpleNamespace(
        **{c: None if (s := stamps.get(c)) is None else after(s) for c in columns}
    )


def test_a_complete_run_in_order_has_no_problems() -> None:
    row = times(
        received_at=0,
        notified_at=30,
        en_route_at=60,
        on_scene_at=400,
        transporting_at=900,
        at_destination_at=1500,
        cleared_at=3000,
    )
    assert time_problems(row) == []


def test_cleared_on_scene_without_transport_has_no_problems() -> None:
    assert (
        time_problems(
            times(received_at=0, notified_at=30, en_route_at=60, on_scene_at=400, cleared_at=900)
        )
        == []
    )


def test_a_time_before_the_previous_one_is_named() -> None:
    row = times(received_at=0, notified_at=30, en_route_at=500, on_scene_at=400, cleared_at=900)
    assert time_problems(row) == ["unit_on_scene before unit_en_route"]


def test_a_missing_time_is_skipped_when_comparing_the_order() -> None:
    # No en-route time: on scene is compared with the notification before it.
    row = times(received_at=0, notified_at=300, on_scene_at=200, cleared_at=900)
    assert time_problems(row) == ["unit_on_scene before unit_notified", "missing unit_en_route"]


def test_missing_times_are_named_and_never_filled_in() -> None:
    row = times(
        received_at=0, notified_at=30, on_scene_at=400, transporting_at=900, cleared_at=3000
    )
    assert time_problems(row) == ["missing unit_en_route", "missing arrived_at_destination"]
    assert (row.en_route_at, row.at_destination_at) == (None, None)


def test_cleared_without_ever_arriving_is_missing_on_scene() -> None:
    row = times(received_at=0, notified_at=30, en_route_at=60, cleared_at=900)
    assert time_problems(row) == ["missing unit_on_scene"]


def test_a_running_assignment_is_not_missing_what_is_still_to_come() -> None:
    assert time_problems(times(received_at=0, notified_at=30, en_route_at=60)) == []
    assert (
        time_problems(
            times(
                received_at=0, notified_at=30, en_route_at=60, on_scene_at=400, transporting_at=900
            )
        )
        == []
    )


def test_a_cancelled_assignment_is_not_missing_anything() -> None:
    row = times(received_at=0, notified_at=30, on_scene_at=400, cancelled_at=500, cleared_at=None)
    assert time_problems(row) == []
    # Out-of-order times are still named: cancelling does not excuse them.
    row = times(received_at=100, notified_at=30, cancelled_at=500)
    assert time_problems(row) == ["unit_notified before psap_call_received"]


# -- a KPI against its goal ----------------------------------------------------------------------


def test_kpi_share_and_goal() -> None:
    processing = next(n for n in NORMS if n.key == "processing")
    assert processing.goal_seconds == 60
    nothing = Kpi(processing, count=0, p50=None, p90=None, met=0)
    assert (nothing.share, nothing.ok) == (None, None)
    assert Kpi(processing, count=10, p50=40, p90=60, met=9).ok is True  # the goal itself is met
    late = Kpi(processing, count=10, p50=55, p90=91, met=6)
    assert (late.share, late.ok) == (0.6, False)
