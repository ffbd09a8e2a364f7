"""Changed rows as notification payloads: what the relay sends and every desk applies.

A relayed change is a partial `Snapshot` (the rows a commit touched, as they now are), written
as JSON and cut into payloads that each fit PostgreSQL's notification limit (8,000 bytes). The
parts of one change share a sequence number and are sent in one transaction, so they arrive
together and in order; `Assembler` puts them back together.

A row too large for one payload on its own is not sent: its id goes in `refetch`, and each desk
reads that row itself. Decoding is strict: a payload that does not decode is refused whole
(`ValueError`), never half applied.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatch_tui.rules.views import CallView, HospitalView, Snapshot, UnitView

__all__ = ["LIMIT", "Assembler", "Relayed", "TooLarge", "decode", "encode"]

# PostgreSQL refuses a payload of 8,000 bytes or more; keep a margin for the envelope's growth.
LIMIT = 7_800
VERSION = 1

_KINDS: dict[str, type[Any]] = {"calls": CallView, "units": UnitView, "hospitals": HospitalView}


@dataclass(frozen=True, slots=True)
class Relayed:
    """One change as relayed: its rows, and the rows each desk reads itself (too large)."""

    seq: int
    snapshot: Snapshot  # partial: only the rows sent
    refetch: tuple[frozenset[int], frozenset[int], frozenset[int]]  # calls, units, hospitals


class TooLarge(ValueError):
    """A change whose list of rows to read alone would not fit one payload."""


def encode(seq: int, snapshot: Snapshot, limit: int = LIMIT) -> list[str]:
    """The payloads that carry `snapshot` (a partial one), each under `limit` bytes, the first
    with the change's envelope. TooLarge when even that cannot fit."""
    rows: list[tuple[str, str]] = []  # (kind, row as JSON)
    refetch: dict[str, list[int]] = {"calls": [], "units": [], "hospitals": []}
    for kind, items in (
        ("calls", snapshot.calls),
        ("units", snapshot.units),
        ("hospitals", snapshot.hospitals),
    ):
        for item in items:
            text = json.dumps(_plain(item), separators=(",", ":"), ensure_ascii=False)
            if len(text.encode()) > limit // 2:
                refetch[kind].append(item.id)
            else:
                rows.append((kind, text))
    head = {"v": VERSION, "seq": seq, "now": snapshot.db_now.isoformat(), "refetch": refetch}
    parts: list[dict[str, list[str]]] = [{}]
    for kind, text in rows:
        parts[-1].setdefault(kind, []).append(text)
        if len(_payload(head, parts, len(parts) - 1, 999).encode()) > limit:
            parts[-1][kind].pop()  # (never the only row of a part: a row is under limit // 2)
            parts.append({kind: [text]})
    payloads = [_payload(head, parts, i, len(parts)) for i in range(len(parts))]
    if max(len(p.encode()) for p in payloads) > limit:
        raise TooLarge(f"a change of {len(rows)} rows does not fit its payloads")
    return payloads


def _payload(head: dict[str, Any], parts: list[dict[str, list[str]]], index: int, of: int) -> str:
    envelope = head if index == 0 else {"v": VERSION, "seq": head["seq"]}
    fields = ",".join(
        f'"{key}":{json.dumps(value, separators=(",", ":"))}'
        for key, value in {**envelope, "part": index, "parts": of}.items()
    )
    body = ",".join(
        f'"{kind}":[{",".join(texts)}]' for kind, texts in parts[index].items() if texts
    )
    return "{" + fields + ("," + body if body else "") + "}"


def decode(payloads: list[str]) -> Relayed:
    """The change the parts of one sequence number carry, in order; ValueError if any part is
    malformed, or parts are missing or foreign."""
    if not payloads:
        raise ValueError("no payload")
    parts = [_object(json.loads(p)) for p in payloads]
    head = parts[0]
    seq = head.get("seq")
    if head.get("v") != VERSION or not isinstance(seq, int) or head.get("part") != 0:
        raise ValueError("not the first part of a relayed change")
    if head.get("parts") != len(parts) or any(
        p.get("seq") != seq or p.get("part") != i for i, p in enumerate(parts)
    ):
        raise ValueError("parts missing or out of order")
    rows: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
    for part in parts:
        for kind, cls in _KINDS.items():
            for item in _list(part.get(kind, [])):
                rows[kind].append(_build(cls, item))
    snapshot = Snapshot(
        full=False,
        db_now=_datetime(head.get("now")),
        calls=tuple(rows["calls"]),
        units=tuple(rows["units"]),
        hospitals=tuple(rows["hospitals"]),
    )
    return Relayed(seq, snapshot, _ids(head.get("refetch")))


def envelope(payload: str) -> tuple[int, int, int] | None:
    """A payload's (seq, part, parts), read without decoding its rows; None if it has none."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    seq, part, parts = data.get("seq"), data.get("part"), data.get("parts")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (seq, part, parts)):
        return None
    assert isinstance(seq, int) and isinstance(part, int) and isinstance(parts, int)
    if not 0 <= part < parts:
        return None
    return seq, part, parts


class Assembler:
    """Collects the parts of each relayed change; hands back a change's payloads once all its
    parts are in. A part out of turn means parts were lost (or the listener came in mid-change):
    `broken` is set once (the receiver reloads everything), and the rest of that change is
    dropped without another word."""

    def __init__(self) -> None:
        self._seq: int | None = None
        self._parts: list[str] = []
        self._dropped: int | None = None  # the change whose remaining parts are ignored
        self.broken = False

    def add(self, payload: str) -> list[str] | None:
        head = envelope(payload)
        if head is None:
            self.broken = True
            return None
        seq, part, parts = head
        if part == 0:
            if self._parts:
                self.broken = True  # the last change never completed
            self._seq, self._parts, self._dropped = seq, [payload], None
        elif seq == self._seq and part == len(self._parts):
            self._parts.append(payload)
        else:
            if seq != self._dropped:
                self.broken = True
                self._dropped = seq
            self._seq, self._parts = None, []
            return None
        if len(self._parts) == parts:
            done, self._seq, self._parts = self._parts, None, []
            return done
        return None


# -- building frozen views from JSON ---------------------------------------------------------


def _plain(value: Any) -> Any:
    """A view as JSON-ready data (datetimes as ISO 8601), fields by name: no derived extras."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _build(cls: type[Any], data: Any) -> Any:
    data = _object(data)
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _value(hints[f.name], data[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{cls.__name__} without {f.name}")
    return cls(**values)


def _value(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise ValueError("null where a value is needed")
        (hint,) = [o for o in options if o is not type(None)]
        return _value(hint, value)
    if origin is tuple:
        args = typing.get_args(hint)
        items = _list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in items)
        if len(args) != len(items):
            raise ValueError(f"{len(items)} values where {len(args)} are needed")
        return tuple(_value(a, v) for a, v in zip(args, items, strict=True))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value)  # type: ignore[arg-type]
    if hint is datetime:
        return _datetime(value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise ValueError(f"{value!r} is not a {hint}")


def _datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("a time that is not text")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a time without its zone")
    return moment


def _ids(value: Any) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
    data = _object(value)
    found = []
    for kind in _KINDS:
        ids = _list(data.get(kind, []))
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError("an id that is not a number")
        found.append(frozenset(ids))
    return found[0], found[1], found[2]


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value
