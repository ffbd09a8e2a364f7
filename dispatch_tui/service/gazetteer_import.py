"""Loading the gazetteer (`gis import`): the agency's own addresses and streets.

`load_file` reads OpenAddresses-style CSV (`LON,LAT,NUMBER,STREET,UNIT,CITY,DISTRICT,REGION,
POSTCODE,ID,HASH`) or GeoJSON (Point features as address points, LineString and MultiLineString
features as street lines); `load` takes rows made elsewhere, such as the demo's. Rows are checked
(`rules.addresses.address_row`, `street_line`) and written in batches, each its own transaction,
keyed by (source, source_key): loading the same data again changes nothing, and a corrected row
is changed in place. What is refused is counted by why. With `replace`, the whole file is one
transaction that also removes the source's rows the file no longer has (an address demolished, a
street renamed); refused whole, nothing written, when the file had refused rows or lacks more
than REPLACE_MOST of the source (a file cut short). The streets' view is refreshed at the end,
concurrently, so geocoding goes on meanwhile. Only the database's owner writes the gazetteer
(migration 0014): any other login is refused in one line.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import psycopg
from sqlalchemy import and_, bindparam, column, delete, exists, func, select, table, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.db.models import AddressPoint, StreetSegment
from dispatch_tui.rules import addresses, validation
from dispatch_tui.rules.addresses import AddressRow, GazetteerImport, StreetLine
from dispatch_tui.rules.errors import Forbidden, InvalidInput, NotFound
from dispatch_tui.service.transactions import db_errors, reading

# Rows written per transaction while loading.
BATCH = 1000
# Refused rows named in the summary, as examples.
EXAMPLES = 5
# The most of a source's rows a `replace` removes without being told to (`force`).
REPLACE_MOST = 0.25

Progress = Callable[[int, int], None]  # (done, total), in bytes of the file read


class _Tally:
    """What a load did so far."""

    def __init__(self) -> None:
        self.rows = 0
        self.points = 0
        self.segments = 0
        self.unchanged = 0
        self.refused: Counter[str] = Counter()
        self.examples: list[str] = []
        self.retired_points = 0
        self.retired_lines = 0
        self.note = ""

    def refuse(self, why: str, where: str) -> None:
        self.refused[why] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{where}: {why}")

    def report(self, source: str) -> GazetteerImport:
        return GazetteerImport(
            source,
            self.rows,
            self.points,
            self.segments,
            self.unchanged,
            dict(self.refused.most_common()),
            tuple(self.examples),
            self.retired_points,
            self.retired_lines,
            self.note,
        )


Row = AddressRow | StreetLine | tuple[str, str]  # a checked row, or (why refused, where)


def load_file(
    sessions: sessionmaker[Session],
    path: Path,
    *,
    source: str | None = None,
    progress: Progress | None = None,
    replace: bool = False,
    force: bool = False,
) -> GazetteerImport:
    """Load a CSV or GeoJSON file (by its name's ending, else its first character) into the
    gazetteer as `source` (default: the file's name); with `replace`, the source's rows the
    file no longer has are removed (see `load`)."""
    name = validation.text_field("source", source or path.name, 100, required=True)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFound(f"no file {path}") from None
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror}") from None
    with handle:
        total = path.stat().st_size
        reader = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
        kind = _kind(path, reader)

        def done() -> None:
            if progress is not None:
                progress(handle.tell(), total)

        rows = _csv_rows(reader) if kind == "csv" else _geojson_rows(reader)
        return load(sessions, name, rows, tick=done, replace=replace, force=force)


def _kind(path: Path, reader: IO[str]) -> str:
    ending = path.suffix.lower()
    if ending == ".csv":
        return "csv"
    if ending in (".geojson", ".json"):
        return "geojson"
    first = reader.read(1)
    reader.seek(0)
    return "geojson" if first in ("{", "[") else "csv"


_CSV_REQUIRED = ("LON", "LAT", "NUMBER", "STREET")


def _csv_rows(reader: IO[str]) -> Iterator[Row]:
    """OpenAddresses-style CSV, its columns named in any case; DISTRICT and REGION are read
    but not kept (a county and a state name no place a crew drives to)."""
    # A field may be long (a line of junk): read it whole, for `address_row` to refuse it as
    # too long, rather than have the csv module stop at its 128 kB limit.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_MAX))
    table = csv.DictReader(reader)
    columns = {c.strip().upper(): c for c in table.fieldnames or ()}
    missing = [c for c in _CSV_REQUIRED if c not in columns]
    if missing:
        raise InvalidInput(
            f"not OpenAddresses-style CSV: no {', '.join(missing)} column "
            f"(expected LON,LAT,NUMBER,STREET,UNIT,CITY,DISTRICT,REGION,POSTCODE,ID,HASH)"
        )

    def get(record: dict[str, Any], column: str) -> str:
        value = record.get(columns.get(column, ""), "")
        return value if isinstance(value, str) else ""

    for line, record in _records(table):
        if isinstance(record, str):
            yield (record, f"line {line}")
            continue
        checked = addresses.address_row(
            get(record, "NUMBER"),
            get(record, "STREET"),
            get(record, "LAT"),
            get(record, "LON"),
            unit=get(record, "UNIT"),
            city=get(record, "CITY"),
            postcode=get(record, "POSTCODE"),
            key=get(record, "ID") or get(record, "HASH"),
        )
        yield checked if not isinstance(checked, str) else (checked, f"line {line}")


CSV_FIELD_MAX = 16 * 1024 * 1024


def _records(table: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """The CSV's records by line number; a line the csv module cannot read (a field past its
    limit, a stray quote) as why, once, and the rest read on."""
    records = iter(table)
    while True:
        line = table.line_num + 1
        try:
            record = next(records)
        except StopIteration:
            return
        except csv.Error as err:
            yield line, f"unreadable: {err}"
            if table.line_num < line:  # it could not move past it: nothing more can be read
                return
            continue
        yield table.line_num, record


def _geojson_rows(reader: IO[str]) -> Iterator[Row]:
    """A FeatureCollection (or one Feature): points as addresses, lines as streets."""
    try:
        document = json.load(reader)
    except json.JSONDecodeError as err:
        raise InvalidInput(f"not GeoJSON: {err.msg} at line {err.lineno}") from None
    except RecursionError:
        raise InvalidInput("not GeoJSON: nested too deep") from None
    if isinstance(document, dict) and document.get("type") == "Feature":
        features: Any = [document]
    elif isinstance(document, dict) and document.get("type") == "FeatureCollection":
        features = document.get("features")
    else:
        raise InvalidInput("not GeoJSON: neither a FeatureCollection nor a Feature")
    if not isinstance(features, list):
        raise InvalidInput("not GeoJSON: its features are not a list")
    for index, feature in enumerate(features):
        yield from _feature(feature, f"feature {index}")


def _feature(feature: Any, where: str) -> Iterator[Row]:
    if not isinstance(feature, dict):
        yield ("not a feature", where)
        return
    geometry = feature.get("geometry") if isinstance(feature, dict) else None
    props = feature.get("properties") if isinstance(feature, dict) else None
    props = {str(k).lower(): v for k, v in props.items()} if isinstance(props, dict) else {}
    shape = geometry.get("type") if isinstance(geometry, dict) else None
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    key = props.get("id") or props.get("hash") or feature.get("id") or ""
    if shape == "Point":
        position = coords if isinstance(coords, list) and len(coords) >= 2 else [None, None]
        checked = addresses.address_row(
            props.get("number") or "",
            props.get("street") or "",
            position[1],
            position[0],
            unit=props.get("unit") or "",
            city=props.get("city") or "",
            postcode=props.get("postcode") or "",
            key=key,
        )
        yield checked if not isinstance(checked, str) else (checked, where)
    elif shape in ("LineString", "MultiLineString"):
        name = props.get("name") or props.get("street") or props.get("fullname") or ""
        parts = [coords] if shape == "LineString" else coords
        if not isinstance(parts, list):
            yield ("bad coordinates", where)
            return
        for i, part in enumerate(parts):
            line = addresses.street_line(
                name,
                part,
                city=props.get("city") or "",
                key=f"{key}#{i}" if key and shape == "MultiLineString" else key,
            )
            yield line if not isinstance(line, str) else (line, where)
    else:
        yield (f"not a point or a line ({shape or 'no geometry'})", where)


def load(
    sessions: sessionmaker[Session],
    source: str,
    rows: Iterable[Row],
    *,
    tick: Callable[[], None] | None = None,
    replace: bool = False,
    force: bool = False,
) -> GazetteerImport:
    """Write checked rows into the gazetteer as `source`, BATCH at a time, then refresh the
    streets' view. `tick` is called after each batch (a progress bar).

    Without `replace`, each batch is its own transaction. With it, the file is the whole source
    now, and all of it is one transaction: the rows written, then the source's rows the file
    no longer has removed (`_retire`). Refused whole, with nothing written (InvalidInput), when
    the file had refused rows (a row refused now would lose its good old version) or lacks more
    than REPLACE_MOST of the source's points or of its lines (a file cut short), unless
    `force`."""
    tally = _Tally()
    if not replace:
        try:
            _load_rows(rows, tally, tick, lambda batch: _write(sessions, source, *batch, tally))
        finally:
            # Batches already written are in the gazetteer even when a later one failed: its
            # streets' view must say so, or geocoding misses what completion offers.
            if tally.rows:
                refresh_streets(sessions)
        if tick is not None:
            tick()
        return tally.report(source)
    with _owner_only(), db_errors(), sessions.begin() as s:
        before = _held(s, source)
        seen = _load_rows(rows, tally, tick, lambda batch: _write_in(s, source, *batch, tally))
        refused = sum(tally.refused.values())
        if refused:
            raise InvalidInput(
                f"--replace: {refused:,} rows of the file were refused (a refused row's old "
                "version would be lost); nothing was loaded or removed. Mend them, or load "
                "without --replace"
            )
        _retire(s, source, seen, before, tally, force=force)
    refresh_streets(sessions)
    if not any(before.values()):
        tally.note = (
            f"nothing was kept as {source} before, so nothing was replaced (to replace an "
            "earlier load, name its source: --source NAME)"
        )
    if tick is not None:
        tick()
    return tally.report(source)


Batch = tuple[dict[str, AddressRow], dict[str, StreetLine]]


def _load_rows(
    rows: Iterable[Row],
    tally: _Tally,
    tick: Callable[[], None] | None,
    write: Callable[[Batch], None],
) -> dict[str, set[str]]:
    """Hand the checked rows to `write` BATCH at a time, counting the refused; every key the
    rows held, by kind (`p` points, `l` lines): a few bytes a row, 100k rows a few MB."""
    points: dict[str, AddressRow] = {}
    lines: dict[str, StreetLine] = {}
    seen: dict[str, set[str]] = {"p": set(), "l": set()}
    for row in rows:
        tally.rows += 1
        if isinstance(row, AddressRow):
            points[row.source_key] = row  # the last of two rows with one key wins
            seen["p"].add(row.source_key)
        elif isinstance(row, StreetLine):
            lines[row.source_key] = row
            seen["l"].add(row.source_key)
        else:
            tally.refuse(*row)
        if len(points) + len(lines) >= BATCH:
            write((points, lines))
            points, lines = {}, {}
            if tick is not None:
                tick()
    write((points, lines))
    return seen


def _write(
    sessions: sessionmaker[Session],
    source: str,
    points: dict[str, AddressRow],
    lines: dict[str, StreetLine],
    tally: _Tally,
) -> None:
    if not points and not lines:
        return
    with _owner_only(), db_errors(), sessions.begin() as s:
        _write_in(s, source, points, lines, tally)


def _write_in(
    s: Session,
    source: str,
    points: dict[str, AddressRow],
    lines: dict[str, StreetLine],
    tally: _Tally,
) -> None:
    """Write one batch in the caller's transaction."""
    if points:
        written = _upsert_points(s, source, list(points.values()))
        tally.points += written
        tally.unchanged += len(points) - written
    if lines:
        written = _upsert_lines(s, source, list(lines.values()))
        tally.segments += written
        tally.unchanged += len(lines) - written


_TABLES: tuple[tuple[str, Any], ...] = (
    ("p", AddressPoint.__table__),
    ("l", StreetSegment.__table__),
)
_KINDS = {"p": "address points", "l": "street lines"}


def _held(s: Session, source: str) -> dict[str, int]:
    """How many points (`p`) and lines (`l`) are kept as `source` now."""
    return {
        kind: int(
            s.execute(
                select(func.count()).select_from(kept).where(kept.c.source == source)
            ).scalar_one()
        )
        for kind, kept in _TABLES
    }


def _retire(
    s: Session,
    source: str,
    seen: dict[str, set[str]],
    before: dict[str, int],
    tally: _Tally,
    *,
    force: bool,
) -> None:
    """Remove the source's points and lines whose keys the file did not hold (`seen`), in the
    load's transaction; refused (InvalidInput, and the whole load rolled back) when that is more
    than REPLACE_MOST of the points or of the lines kept as `source` before the load, unless
    `force`. Calls keep their location as typed: nothing refers to a gazetteer row."""
    s.execute(text("CREATE TEMPORARY TABLE seen (kind char(1), key text) ON COMMIT DROP"))
    raw = s.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy("COPY seen (kind, key) FROM STDIN") as copy:
        for kind, keys in seen.items():
            for key in keys:
                copy.write_row((kind, key))
    s.execute(text("CREATE INDEX ON seen (kind, key)"))
    s.execute(text("ANALYZE seen"))
    gone = {
        kind: int(
            s.execute(
                select(func.count()).select_from(kept).where(_gone(kept, kind)),
                {"source": source},
            ).scalar_one()
        )
        for kind, kept in _TABLES
    }
    for kind, count in gone.items():
        if count > REPLACE_MOST * before[kind] and not force:
            raise InvalidInput(
                f"--replace: the file lacks {count:,} of the {before[kind]:,} {_KINDS[kind]} "
                f"kept as {source} (more than {REPLACE_MOST:.0%}: a file cut short?); nothing "
                "was loaded or removed. Add --force to remove them"
            )
    for kind, kept in _TABLES:
        s.execute(delete(kept).where(_gone(kept, kind)), {"source": source})
    tally.retired_points, tally.retired_lines = gone["p"], gone["l"]


_SEEN = table("seen", column("kind"), column("key"))


def _gone(kept: Any, kind: str) -> Any:
    """The source's rows of table `kept` whose key the file did not hold (`seen`)."""
    return and_(
        kept.c.source == bindparam("source"),
        kept.c.source_key.is_not(None),
        ~exists().where(_SEEN.c.kind == kind, _SEEN.c.key == kept.c.source_key),
    )


_POINT_DATA = ("number", "street", "street_key", "house", "unit", "city", "postcode", "lat", "lon")
_LINE_DATA = ("name", "street_key", "city", "coords", "min_lat", "max_lat", "min_lon", "max_lon")


def _upsert_points(s: Session, source: str, rows: list[AddressRow]) -> int:
    """Insert the new points, change the changed ones; how many were written."""
    values = [
        {**{c: getattr(r, c) for c in _POINT_DATA}, "source": source, "source_key": r.source_key}
        for r in rows
    ]
    return _upsert(s, AddressPoint.__table__, _POINT_DATA, values)


def _upsert_lines(s: Session, source: str, rows: list[StreetLine]) -> int:
    values = []
    for r in rows:
        min_lat, max_lat, min_lon, max_lon = r.box
        values.append(
            {
                "name": r.name,
                "street_key": r.street_key,
                "city": r.city,
                "coords": [list(point) for point in r.coords],
                "min_lat": min_lat,
                "max_lat": max_lat,
                "min_lon": min_lon,
                "max_lon": max_lon,
                "source": source,
                "source_key": r.source_key,
            }
        )
    return _upsert(s, StreetSegment.__table__, _LINE_DATA, values)


@functools.cache
def _upsert_statement(table: Any, columns: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (source, source_key) DO UPDATE, changing only rows whose data
    differ (loading the same file again writes nothing, and says so). Built once per table;
    run with a list of rows, which SQLAlchemy sends in a few multi-row statements."""
    statement = insert(table)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.source, table.c.source_key],
        index_where=table.c.source_key.is_not(None),
        set_={c: new[c] for c in columns},
        where=tuple_(*(table.c[c] for c in columns)).is_distinct_from(
            tuple_(*(new[c] for c in columns))
        ),
    ).returning(table.c.id)


def _upsert(s: Session, table: Any, columns: tuple[str, ...], values: list[dict[str, Any]]) -> int:
    """Write `values` into `table`; how many rows were new or changed."""
    return len(s.execute(_upsert_statement(table, columns), values).all())


def refresh_streets(sessions: sessionmaker[Session]) -> None:
    """The streets' view (migration 0014) as the tables are now; readers go on meanwhile."""
    with _owner_only(), db_errors(), sessions.begin() as s:
        s.execute(text("REFRESH MATERIALIZED VIEW CONCURRENTLY gazetteer_streets"))


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """How many address points and street lines the gazetteer has."""
    with reading(sessions) as s:
        points = s.scalar(func.count(AddressPoint.id).select()) or 0
        lines = s.scalar(func.count(StreetSegment.id).select()) or 0
        return int(points), int(lines)


@contextmanager
def _owner_only() -> Iterator[None]:
    """A login that may not write the gazetteer is refused in one line (exit 5)."""
    try:
        yield
    except DBAPIError as err:
        if isinstance(err.orig, psycopg.errors.InsufficientPrivilege):
            raise Forbidden(
                "this database login may not write the gazetteer: load it as the database's "
                "owner (the login that ran `db upgrade`)"
            ) from None
        raise
