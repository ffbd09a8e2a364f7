"""The drill simulator: it plays a shift through the service, crews every busy unit, and the same
seed gives the same calls; every drill leaves the database keeping the shared invariants
(`invariants.py`)."""

from __future__ import annotations

from sqlalchemy import Engine, text

from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.simulate import SimOptions, Simulator
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
    from dispatch_tui.rules.validation import CallIntake

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
