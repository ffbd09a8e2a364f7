"""The drill simulator: it plays a shift through the service, crews every busy unit, and the same
seed gives the same calls; every drill leaves the database keeping the shared invariants
(`invariants.py`). Busy units move: a step along their way every few seconds, through the write
`unit locate` makes, to the call, to the hospital, and home to park. The drill's clock is the
`step` it is given: nothing here sleeps."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from dispatch_tui.rules.recommend import estimate_seconds, haversine_km
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import UnitView
from dispatch_tui.service import demo
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.simulate import Leg, SimOptions, Simulator
from tests.conftest import reset
from tests.helpers import new_call
from tests.invariants import violations


def play(
    world: DispatchService, seed: int, rounds: int, auto: bool = True, seconds: float = 300
) -> Simulator:
    sim = Simulator(world, "alice", SimOptions(calls_per_hour=20, auto_dispatch=auto, seed=seed))
    for _ in range(rounds):
        sim.step(seconds)  # each look at the world advances the simulated clock this much
    return sim


def test_a_drill_shift_moves_every_unit_through_its_lifecycle(
    world: DispatchService, engine: Engine
) -> None:
    sim = play(world, seed=11, rounds=36, seconds=300)  # three simulated hours
    assert sim.stats.calls >= 30 and sim.stats.dispatches >= 20
    assert violations(engine) == ""
    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM assignments WHERE cleared_at IS NOT NULL")
        ).scalar_one()
        transported = conn.execute(
            text("SELECT count(*) FROM assignments WHERE at_destination_at IS NOT NULL")
        ).scalar_one()
        desks = conn.execute(text("SELECT DISTINCT desk FROM audit_log")).scalars().all()
    assert done >= 10 and transported >= 5  # whole cycles: on scene, transport, offload, back
    assert desks == ["test"]  # every change went through the service


def test_the_same_seed_gives_the_same_calls(world: DispatchService, engine: Engine) -> None:
    def taken() -> list[tuple[str, int, str]]:
        calls = sorted(world.calls(open_only=False), key=lambda c: c.id)  # in the order taken
        return [(c.nature, c.priority, c.location_text) for c in calls]

    first = play(world, seed=5, rounds=10, auto=False)
    once = taken()
    second = play(world, seed=5, rounds=10, auto=False)
    assert first.stats.calls == second.stats.calls > 3
    assert taken()[len(once) :] == once
    assert violations(engine) == ""


def test_units_dispatched_by_a_person_are_crewed_too(
    world: DispatchService, engine: Engine
) -> None:
    number = world.create_call(
        "bob", CallIntake(nature="Fall", place="City Library", priority=3)
    ).number
    world.dispatch("bob", number, ["B1"])
    sim = Simulator(world, "alice", SimOptions(calls_per_hour=0, seed=1))
    for _ in range(40):
        sim.step(120)
    assert world.call(number).status == "CLOSED"
    assert {u.code: u.status for u in world.units()}["B1"] == "AVAILABLE"
    assert violations(engine) == ""


# -- units move: a step along their way every few seconds, through `unit locate`'s write ------


def unit(world: DispatchService, code: str) -> UnitView:
    (found,) = [u for u in world.units() if u.code == code]
    return found


def where(view: UnitView) -> tuple[float, float]:
    assert view.lat is not None and view.lon is not None, f"{view.code} has no position"
    return (view.lat, view.lon)


def fixes(engine: Engine, code: str) -> int:
    """How many positions `code` reported (each is audited, as `unit locate` is)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM audit_log l JOIN units u ON u.id = l.unit_id"
                    " WHERE l.action = 'unit_position' AND u.code = :code"
                ),
                {"code": code},
            ).scalar_one()
        )


def crewed(world: DispatchService, seed: int = 3) -> Simulator:
    """A drill with no new calls that crews the units people dispatched; positions every 5 s."""
    return Simulator(world, "alice", SimOptions(calls_per_hour=0, seed=seed, position_seconds=5))


def until_rolling(sim: Simulator, world: DispatchService, code: str) -> None:
    """Step the drill (10 simulated seconds a look) until `code`'s crew reported en route and the
    drill set out on its drive."""
    for _ in range(60):
        sim.step(10)
        if unit(world, code).en_route_reported and code in sim.legs:
            return
    raise AssertionError(f"{code} never rolled")


def test_a_unit_en_route_closes_in_on_its_call_and_arrives_there(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)  # Riverton Mall: a place with coordinates
    call = world.call(number)
    scene = (call.lat, call.lon)
    world.dispatch("alice", number, ["M4"])  # from its station, some km away
    sim = crewed(world)
    until_rolling(sim, world, "M4")
    leg = sim.legs["M4"]
    assert leg.end == scene and leg.ends > leg.begins

    distances, etas, reported = [], [], []
    while unit(world, "M4").status == "EN_ROUTE":
        before = fixes(engine, "M4")
        sim.step(5)  # one report due each look
        view = unit(world, "M4")
        if view.status != "EN_ROUTE":
            break
        assert fixes(engine, "M4") == before + 1  # one small write per look, no more
        distances.append(haversine_km(where(view), scene))
        etas.append(estimate_seconds(distances[-1]))
        reported.append(view.position_age)
    assert len(distances) >= 5, "the drive took a few looks"
    assert distances == sorted(distances, reverse=True) and distances[-1] < distances[0]
    assert etas[-1] < etas[0]  # what every desk's ETA for it is measured from
    assert all(age is not None and age < 60 for age in reported)  # fresh, never stale
    arrived = unit(world, "M4")
    assert arrived.status == "ON_SCENE" and where(arrived) == scene
    assert "M4" not in sim.legs
    assert violations(engine) == ""  # each position agrees with its audit row


def test_a_moving_unit_reports_every_few_seconds_not_every_look(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M4"])
    sim = crewed(world)
    until_rolling(sim, world, "M4")
    before = fixes(engine, "M4")
    for _ in range(20):  # twenty looks, a second apart
        sim.step(1)
    assert unit(world, "M4").status == "EN_ROUTE"
    assert fixes(engine, "M4") - before == 4  # one every position_seconds (5 s), no more


def test_the_rate_is_in_real_seconds_whatever_the_drill_speed(world: DispatchService) -> None:
    options = SimOptions(calls_per_hour=0, seed=1, speed=30, position_seconds=4)
    assert Simulator(world, "alice", options).report_every == 120  # simulated seconds


def on_scene_at(world: DispatchService, number: str, code: str) -> None:
    """`code` on scene at call `number`, where its crew says it is."""
    call = world.call(number)
    assert call.lat is not None and call.lon is not None
    world.dispatch("alice", number, [code])
    world.acknowledge("alice", code)
    world.unit_status("alice", code, "EN_ROUTE")
    world.unit_status("alice", code, "ON_SCENE")
    world.locate_unit("alice", code, call.lat, call.lon)


def test_a_transport_drives_to_the_hospital_then_home_to_park_at_the_station(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    on_scene_at(world, number, "M4")
    world.unit_status("alice", "M4", "TRANSPORTING", hospital="MERCY")
    mercy = next((h.lat, h.lon) for h in world.hospitals() if h.code == "MERCY")
    sim = crewed(world)

    to_hospital = []
    while (view := unit(world, "M4")).status == "TRANSPORTING":
        to_hospital.append(haversine_km(where(view), mercy))
        sim.step(30)
    assert len(to_hospital) >= 5 and to_hospital == sorted(to_hospital, reverse=True)
    assert unit(world, "M4").status == "AT_HOSPITAL" and where(unit(world, "M4")) == mercy

    while unit(world, "M4").status == "AT_HOSPITAL":  # offload, standing still
        sim.step(60)
    sim.step(1)  # the next look sees it cleared
    station = unit(world, "M4").station_position
    assert station is not None and sim.legs["M4"].end == station  # driving home

    # A call near its station: the free unit's ETA there shrinks as it comes home.
    near_home = world.create_call(
        "alice",
        CallIntake(
            nature="Fall", location="1 Station Rd", priority=3, lat=station[0], lon=station[1]
        ),
    ).number
    home, etas = [], []
    while "M4" in sim.legs:
        home.append(haversine_km(where(unit(world, "M4")), station))
        (m4,) = [r for r in world.recommend(near_home, limit=12) if r.unit.code == "M4"]
        assert m4.eta_seconds is not None
        etas.append(m4.eta_seconds)
        sim.step(30)
    assert len(home) >= 3 and home == sorted(home, reverse=True)
    assert etas == sorted(etas, reverse=True) and etas[-1] < etas[0]
    parked = unit(world, "M4")
    assert parked.status == "AVAILABLE" and where(parked) == station

    before = fixes(engine, "M4")
    for _ in range(5):
        sim.step(30)
    assert fixes(engine, "M4") == before  # parked: nothing to report, its position ages
    assert violations(engine) == ""


def test_a_unit_cleared_at_the_scene_drives_home_too(world: DispatchService) -> None:
    number = new_call(world)
    on_scene_at(world, number, "M4")
    sim = crewed(world)
    sim.step(1)  # the drill sees it on scene
    world.unit_status("alice", "M4", "AVAILABLE")  # treated, not transported
    sim.step(1)
    assert sim.legs["M4"].end == unit(world, "M4").station_position


def test_a_unit_sent_out_again_on_its_way_home_stops_driving_home(world: DispatchService) -> None:
    number = new_call(world)
    on_scene_at(world, number, "M4")
    sim = crewed(world)
    sim.step(1)
    world.unit_status("alice", "M4", "AVAILABLE")
    sim.step(1)
    assert "M4" in sim.legs
    world.dispatch("alice", new_call(world, place="City Library"), ["M4"])
    sim.step(1)
    assert "M4" not in sim.legs  # its crew acknowledges first, where it is; then rolls


def drive(world: DispatchService, engine: Engine, seed: int) -> list[tuple[float, float]]:
    """A whole call played from a fresh start: every position M4 reported, in order."""
    reset(engine)
    with world.sessions.begin() as s:
        demo._reference(s, None)
    number = new_call(world)
    world.dispatch("alice", number, ["M4"])
    sim = crewed(world, seed)
    for _ in range(400):
        sim.step(15)
        if world.call(number).status == "CLOSED":
            break
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT (details->>'lat')::float8, (details->>'lon')::float8 FROM audit_log"
                " WHERE action = 'unit_position' ORDER BY id"
            )
        ).all()
    return [(lat, lon) for lat, lon in rows]


def test_the_same_seed_moves_the_units_the_same_way(world: DispatchService, engine: Engine) -> None:
    first = drive(world, engine, seed=7)
    assert len(first) >= 10
    assert drive(world, engine, seed=7) == first
    assert drive(world, engine, seed=8) != first  # the durations, and so the steps, differ


def test_a_drive_is_walked_by_the_share_of_its_time_gone() -> None:
    leg = Leg("HOME", (40.0, -83.0), (40.1, -82.8), begins=100, ends=300)
    assert leg.at(50) == (40.0, -83.0)  # not set out yet
    assert leg.at(200) == pytest.approx((40.05, -82.9))  # half the time, half the way
    assert leg.at(300) == leg.at(1000) == (40.1, -82.8)  # there exactly, and staying there
    assert Leg("HOME", (1.0, 2.0), (3.0, 4.0), 5, 5).at(5) == (3.0, 4.0)  # no time: there
