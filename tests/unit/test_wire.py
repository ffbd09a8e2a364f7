"""Changed rows as notification payloads: round trips, the size limit, strict decoding."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dispatch_tui.rules import wire
from dispatch_tui.rules.views import Snapshot
from tests.helpers import T0, assignment_view, call_view, hospital_view, unit_view


def _snapshot(calls: int = 1, notes: str = "") -> Snapshot:
    crew = dataclasses.replace(
        assignment_view("M1", "EN_ROUTE", en_route_at=T0), alert_error="exit 1: [bold]x"
    )
    made = [
        dataclasses.replace(
            call_view(f"C-{n}", "DISPATCHED", lat=40.0, lon=-83.0, assignments=(crew,)),
            id=n,
            notes=notes,
            queued_units=("B2",),
            hazard=True,
        )
        for n in range(1, calls + 1)
    ]
    unit = unit_view("M1", status="EN_ROUTE", lat=40.01, lon=-83.02, station_position=(40.0, -83.0))
    return Snapshot(
        full=False,
        db_now=T0,
        calls=tuple(made),
        units=(unit,),
        hospitals=(hospital_view("MERCY", 40.01, -82.99),),
    )


def test_a_change_comes_back_as_it_was_sent() -> None:
    snapshot = _snapshot()
    payloads = wire.encode(7, snapshot)
    assert len(payloads) == 1 and all(len(p.encode()) < 8000 for p in payloads)
    relayed = wire.decode(payloads)
    assert relayed.seq == 7
    assert relayed.snapshot == snapshot
    assert relayed.refetch == (frozenset(), frozenset(), frozenset())


def test_a_large_change_is_cut_into_parts_each_under_the_limit_and_put_back_together() -> None:
    snapshot = _snapshot(calls=40, notes="n" * 500)
    payloads = wire.encode(8, snapshot)
    assert len(payloads) > 2
    assert all(len(p.encode()) < wire.LIMIT for p in payloads)
    assembler = wire.Assembler()
    done = [assembler.add(p) for p in payloads]
    assert done[:-1] == [None] * (len(payloads) - 1) and done[-1] == payloads
    assert wire.decode(payloads).snapshot == snapshot
    assert not assembler.broken


def test_a_row_too_large_for_one_payload_is_named_to_be_read_instead() -> None:
    snapshot = _snapshot(calls=2)
    huge = dataclasses.replace(snapshot.calls[0], notes="x" * 9000)
    payloads = wire.encode(9, dataclasses.replace(snapshot, calls=(huge, snapshot.calls[1])))
    relayed = wire.decode(payloads)
    assert [c.number for c in relayed.snapshot.calls] == ["C-2"]
    assert relayed.refetch[0] == frozenset({1})


def test_a_lost_part_breaks_the_assembly_rather_than_apply_half_a_change() -> None:
    payloads = wire.encode(10, _snapshot(calls=40, notes="n" * 500))
    later = wire.encode(11, _snapshot())
    assembler = wire.Assembler()
    assert assembler.add(payloads[0]) is None
    assert assembler.add(later[0]) == later  # the next change, whole
    assert assembler.broken  # the first one never completed: the receiver reloads


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[]",
        '{"v": 1, "seq": 1, "part": 0, "parts": 1, "now": "2026-03-02T10:00:00", "refetch": {}}',
        '{"v": 1, "seq": 1, "part": 0, "parts": 1, "now": "2026-03-02T10:00:00+00:00",'
        ' "refetch": {}, "units": [{"id": 1}]}',
        '{"v": 2, "seq": 1, "part": 0, "parts": 1}',
    ],
)
def test_a_malformed_payload_is_refused_whole(payload: str) -> None:
    with pytest.raises(ValueError):
        wire.decode([payload])


def test_a_unit_with_a_wrongly_typed_field_is_refused() -> None:
    (payload,) = wire.encode(1, _snapshot())
    data = json.loads(payload)
    data["units"][0]["lat"] = "forty"
    with pytest.raises(ValueError):
        wire.decode([json.dumps(data)])


def test_the_rest_of_a_broken_change_is_dropped_with_one_reload_not_one_per_part() -> None:
    payloads = wire.encode(12, _snapshot(calls=40, notes="n" * 500))
    assert len(payloads) > 3
    assembler = wire.Assembler()
    breaks = 0
    for payload in payloads[1:]:  # came in after its first part
        assert assembler.add(payload) is None
        breaks += assembler.broken
        assembler.broken = False
    assert breaks == 1
    assert assembler.add(wire.encode(13, _snapshot())[0]) is not None and not assembler.broken


def test_a_change_whose_rows_to_read_alone_cannot_fit_is_refused_to_the_relay() -> None:
    snapshot = _snapshot(calls=1)
    huge = dataclasses.replace(snapshot.calls[0], notes="x" * 5000)
    many = tuple(dataclasses.replace(huge, id=n) for n in range(1_000_000, 1_001_500))
    with pytest.raises(wire.TooLarge):
        wire.encode(14, dataclasses.replace(snapshot, calls=many))
