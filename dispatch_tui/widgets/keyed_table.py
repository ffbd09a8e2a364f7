"""The one keyed table: rows keyed by id, diffed in place, kept in order, the cursor kept on its
row.

It owns everything that touches DataTable's internals. Panes say only what their rows look like
(columns, cells, sort key, which rows they take) and `sync` does the rest: stale keys removed, only
changed cells rewritten (and only their rows repainted), new rows added, each row in its place,
the cursor restored to the same row.

Why the rewrite reaches into the caches:
`DataTable.update_cell` counts an update that is part of every cached cell's and line's key, so
one changed cell makes every visible cell of the table render again: on a desk with hundreds of
rows and a clock, that was most of the time a change took to show. `KeyedTable.rewrite` writes the
changed cells into the table's data, drops only those cells' and rows' cached renders, and
repaints only those rows.

Why rows are added, placed and measured here, not by DataTable, and the clock ticks in view:
A storm can put ten thousand calls on the desk. `DataTable.add_row` does, for every row, work
that is needed once per batch; DataTable measures every new cell through the console to size
the columns, re-sorts every row to move one, renumbers every row to remove one, and rebuilds its
list of the rows in order after each change. Rows here are one line of plain `Text` without
labels: `_add_rows` adds a batch at once, the table keeps its rows' order itself (`_put_in`,
`_take_out`, `_relocate`), `_update_dimensions` sizes a column by its widest cell's length, and
`tick` rewrites the clocks of the rows in view only. At 10,000 open calls the desk's first paint
took 2 s and a dispatched call 13 ms to leave the pending pane; every second the clock took a
quarter of a second.

Why the table gives its columns their widths itself:
A pane is as wide as the terminal lets it be (half of 100 columns on a small one). Columns sized
by their content would run past its edge, and the columns past the edge (a call's destination,
a call's place) would be seen only by scrolling sideways. `_fit` gives each column its width:
its own, or its widest cell's; when they do not all fit, the pane's `FIT` says which columns
give up width, in what order, down to how narrow (a free text column is then cut with an
ellipsis; a column narrowed to 0 is dropped). Columns are one cell apart (`_Gap`), not two as
DataTable pads them.

This reaches into DataTable's caches (Textual's own notes on per-coordinate invalidation:
Textualize/textual#1483), its row records and its row places. textual is pinned, and
tests/test_desk.py and tests/test_many_calls.py fail if a new version lays them out differently.
Everything that knows that layout is in this module.
"""

from __future__ import annotations

import bisect
from collections.abc import Container, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets._data_table import RowRenderables
from textual.widgets.data_table import (
    CellDoesNotExist,
    CellKey,
    ColumnKey,
    RowKey,
)
from textual.widgets.data_table import Row as DataTableRow


class Keyed(Protocol):
    @property
    def id(self) -> int: ...


Row = TypeVar("Row", bound=Keyed)


class KeyedTable(DataTable[Text], Generic[Row]):
    """A DataTable of rich Text cells, one row per domain row keyed by its id."""

    # (key, label, width); width None: as wide as the column's widest cell (or its label).
    COLUMNS: ClassVar[Sequence[tuple[str, str, int | None]]] = ()
    TIME_COLUMNS: ClassVar[frozenset[str]] = frozenset()  # what the running clock changes
    # When the columns are wider than the table: which give up width, in this order, each down
    # to the width given (0: the column is dropped). See `_fit`.
    FIT: ClassVar[Sequence[tuple[str, int]]] = ()

    def __init__(self, **kwargs: Any) -> None:
        # Columns one cell apart (`_Gap`) instead of DataTable's padding on both sides.
        super().__init__(cell_padding=0, **kwargs)
        self.rows_by_key: dict[str, Row] = {}
        self.now: datetime | None = None
        # Each row's cells as last written, in column order.
        self._cells: dict[str, tuple[Text, ...]] = {}
        # The column widths the cached renders were made at (see render_lines).
        self._widths_rendered: tuple[int, ...] = ()
        # Where the clock's cells sit in a row, in COLUMNS order.
        self._time_at = tuple(
            i for i, (key, _, _) in enumerate(self.COLUMNS) if key in self.TIME_COLUMNS
        )
        # The clock's ticks, counted; and the tick each row's time cells are current for. A tick
        # rewrites the rows in view; a row out of view catches up when it is drawn (see `tick`).
        self._ticks = 0
        self._ticked: dict[str, int] = {}
        # A new row's time cells can wait until it is drawn when no column they are in is sized
        # by its content; while new rows are made (`_deferring`), `clock_cells` gives blanks.
        widths = {key: width for key, _, width in self.COLUMNS}
        self._may_defer = all(widths[key] is not None for key in self.TIME_COLUMNS)
        self._deferring = False
        self._blanks = tuple(Text() for _ in self.TIME_COLUMNS)
        # The rows' order (see "the rows' order" below): (sort key, key) in the table's order,
        # and in the same order DataTable's records of the rows and their lines; each row's sort
        # key in `_order`; the first place that changed since the places were last numbered.
        self._order: list[tuple[Any, str]] = []
        self._records: list[DataTableRow] = []
        self._lines: list[tuple[RowKey, int]] = []
        self._placed: dict[str, Any] = {}
        self._moved_from: int | None = None
        self._row_locations = self._places = _Places()
        # Columns exist from the start: a snapshot can arrive before the table is mounted, and
        # rows added to a table without columns would size every column by its header alone.
        # Every column has a fixed width in DataTable's eyes; `_fit` sets it. A column sized by
        # its content keeps its widest cell's length (or its label's) in `_natural`.
        self._natural: dict[str, int] = {}
        for key, title, width in self.COLUMNS:
            self._natural[key] = width if width is not None else cell_len(title)
            self.add_column(title, key=key, width=self._natural[key] + GAP)

    # -- what a subclass says ----------------------------------------------------------------

    def accepts(self, row: Row) -> bool:
        return True

    def cells(self, row: Row) -> tuple[Text, ...]:
        raise NotImplementedError

    def time_cells(self, row: Row) -> tuple[Text, ...]:
        """The cells of TIME_COLUMNS alone, in COLUMNS order: all the clock changes."""
        cells = self.cells(row)
        return tuple(cells[i] for i in self._time_at)

    def clock_cells(self, row: Row) -> tuple[Text, ...]:
        """What `cells` puts in TIME_COLUMNS (for a table that defines `time_cells`): the time
        cells, or blanks for a new row whose clock is made when it is first drawn (ten thousand
        calls arriving at once are mostly out of view)."""
        return self._blanks if self._deferring else self.time_cells(row)

    def sort_key(self, row: Row) -> Any:
        return row.id

    def rows_changed(self) -> None:
        """Called after every sync (a pane refreshes its keys here)."""

    # -- keeping the table in step ------------------------------------------------------------

    @property
    def selected(self) -> Row | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None
        return self.rows_by_key.get(key or "")

    def sync(self, rows: Iterable[Row], *, full: bool, now: datetime) -> None:
        """Apply fresh rows. Full: rows not given are gone. Partial: only the given rows change."""
        self.now = now
        kept_key = self._selected_key()
        # The rows given that this table takes; the rows that are gone: given and no longer
        # this table's, or (full) not taken. A partial sync looks only at the rows given.
        taken: dict[str, Row] = {}
        stale: list[str] = []
        for row in rows:
            key = str(row.id)
            if self.accepts(row):
                taken[key] = row
            elif key in self.rows_by_key:
                stale.append(key)
        if full:
            stale = [k for k in self.rows_by_key if k not in taken]
        self._remove_rows([k for k in dict.fromkeys(stale) if k not in taken])
        added: list[str] = []
        moved: list[str] = []
        changed: dict[str, tuple[Text, ...]] = {}
        for key, row in taken.items():
            new = key not in self.rows_by_key
            self._deferring = new and self._may_defer
            cells = self.cells(row)
            self._ticked[key] = -1 if self._deferring else self._ticks
            if new:
                added.append(key)
                self._cells[key] = cells
            else:
                changed[key] = cells
                if self.sort_key(row) != self._placed[key]:
                    moved.append(key)
            self.rows_by_key[key] = row
        self._deferring = False
        records = [self._record(key) for key in moved]
        for key in moved:
            self._take_out(key)
        self._put_in(self._add_rows(added) + records)
        if self._moved_from is not None:
            self._relocate(kept_key, was_empty=len(self.rows) == len(added))
        self.rewrite(changed)
        self.rows_changed()

    def tick(self, now: datetime) -> None:
        """Advance the running clocks: only the time columns are touched, and only in the rows
        in view. A storm's ten thousand pending calls each have a clock that moves every second;
        rewriting them all took a quarter of a second, every second. The rows out of view are
        brought up to date when they are drawn (`render_lines`), so what is seen is the same.
        """
        self.now = now
        if not self._time_at:
            return
        self._ticks += 1
        top = self.scroll_offset.y
        self._catch_up(self._keys_at(range(top, top + self.size.height)))

    def _keys_at(self, lines: range) -> list[str]:
        """The keys of the rows on `lines` of the rows' area (0: the first row's line)."""
        offsets = self._y_offsets
        keys = [
            offsets[y][0].value for y in range(max(0, lines.start), min(lines.stop, len(offsets)))
        ]
        return [key for key in dict.fromkeys(keys) if key is not None]

    def _catch_up(self, keys: Iterable[str], *, repaint: bool = True) -> None:
        """Give `keys`' time cells the current clock, if a tick came since they were made."""
        at, ticks = self._time_at, self._ticks
        changed: dict[str, tuple[Text, ...]] = {}
        for key in keys:
            if self._ticked.get(key) == ticks:
                continue
            self._ticked[key] = ticks
            times = self.time_cells(self.rows_by_key[key])
            cells = self._cells[key]
            if any(not same(new, cells[i]) for new, i in zip(times, at, strict=True)):
                fresh = list(cells)
                for new, i in zip(times, at, strict=True):
                    fresh[i] = new
                changed[key] = tuple(fresh)
        self.rewrite(changed, repaint=repaint)

    # -- the rows' order, kept without sorting the table ----------------------------------------
    #
    # DataTable keeps each row's place in `_row_locations`, re-sorts every row to move one, and
    # renumbers the others one by one to remove one; after each change it rebuilds its list of
    # the rows in order and of their lines, through its keys' hashing in Python. At ten thousand
    # rows a dispatched call leaving the pending pane took 13 ms. Here the order is kept as
    # sorted lists: a row comes or goes by bisection, and only the places from the first one
    # that changed are renumbered, once per sync; DataTable's lists are copies of ours. Every
    # row is one line (`_add_rows`).

    def _record(self, key: str) -> DataTableRow:
        """DataTable's record of `key`'s row."""
        return self.rows[self._places.keys[self._position(key)]]

    def _position(self, key: str) -> int:
        """Where `key` is in `_order` (it must be there)."""
        return bisect.bisect_left(self._order, (self._placed[key], key))

    def _take_out(self, key: str) -> None:
        """Take `key`'s row out of the order (its place closes at the next `_relocate`)."""
        i = self._position(key)
        del self._order[i], self._records[i], self._lines[i], self._places.keys[i]
        del self._places.index[key]
        self._moved(i)

    def _put_in(self, records: Sequence[DataTableRow]) -> None:
        """Put the rows of `records` (in `rows_by_key`, not in the order) in their places."""
        entries = []
        for record in records:
            key = record.key.value or ""
            sort_key = self._placed[key] = self.sort_key(self.rows_by_key[key])
            entries.append((sort_key, key, record))
        if len(entries) <= 8:
            for sort_key, key, record in entries:
                i = bisect.bisect_left(self._order, (sort_key, key))
                self._order.insert(i, (sort_key, key))
                self._records.insert(i, record)
                self._lines.insert(i, (record.key, 0))
                self._places.keys.insert(i, record.key)
                self._moved(i)
            return
        # Many (the first load): two sorted runs, which list.sort merges in one pass.
        by_key = {key: record for record, (_, key) in zip(self._records, self._order, strict=True)}
        by_key.update((key, record) for _, key, record in entries)
        self._order += [(sort_key, key) for sort_key, key, _ in entries]
        self._order.sort()
        self._records = [by_key[key] for _, key in self._order]
        self._lines = [(record.key, 0) for record in self._records]
        self._places.keys = [record.key for record in self._records]
        self._moved(0)

    def _moved(self, place: int) -> None:
        if self._moved_from is None or place < self._moved_from:
            self._moved_from = place

    def _add_rows(self, keys: Sequence[str]) -> list[DataTableRow]:
        """DataTable's records of new rows (their cells are in `_cells`); `_put_in` places
        them."""
        # A row's cells keyed by its columns' key strings: DataTable's column keys hash and
        # compare as their strings (`StringKey`), so its lookups find them, and a string's hash
        # is computed once, not in Python for every cell of every row.
        columns: list[Any] = [column.key.value for column in self.ordered_columns]
        data, rows, new = self._data, self.rows, self._new_rows
        records = []
        for key in keys:  # new keys: not in `rows_by_key`, which holds every row's key
            row_key = RowKey(key)
            data[row_key] = dict(zip(columns, self._cells[key], strict=True))
            rows[row_key] = record = DataTableRow(row_key, 1, None, False)
            records.append(record)
            new.add(row_key)
        return records

    def _remove_rows(self, keys: Sequence[str]) -> None:
        """Forget `keys`' rows, here and in DataTable's records; `_relocate` closes the gaps."""
        for key in keys:
            row_key = self._places.keys[self._position(key)]
            self._take_out(key)
            for column in self.columns:
                self._updated_cells.discard(CellKey(row_key, column))
            self._new_rows.discard(row_key)
            del self.rows[row_key], self._data[row_key]
            del self.rows_by_key[key], self._cells[key], self._placed[key]
            self._ticked.pop(key, None)

    def _relocate(self, kept_key: str | None, *, was_empty: bool) -> None:
        """Number the places from the first that changed, then do once what DataTable does
        after each row it adds, removes or sorts: re-check the cursor, re-measure, redraw (all
        of it: the hover's cell too)."""
        start = self._moved_from or 0
        self._moved_from = None
        # zip(map(itemgetter)): no Python code runs per row.
        self._places.index.update(
            zip(
                map(itemgetter(1), self._order[start:]),
                range(start, len(self._order)),
                strict=True,
            )
        )
        self._count_update()
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and self.row_count and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # a cursor now has a row to sit on
        self.check_idle()
        self.refresh(layout=True)
        self._restore(kept_key)

    def _count_update(self) -> None:
        """Bump DataTable's update count (every cached render is then stale) and give it, for
        the new count, its lists of the rows in order and of their lines: copies of ours."""
        self._update_count += 1
        self._ordered_row_cache[(len(self._records), self._update_count)] = list(self._records)
        self._offset_cache[self._update_count] = list(self._lines)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """DataTable's, for rows of one-line Text without labels: a column sized by its content
        is as wide as its widest cell's length (what measuring each cell through the console
        came to); then the columns are fitted to the table (`_fit`)."""
        # The new rows still here (one may have been removed before the table went idle).
        self._measure([cells for key in new_rows if (cells := self._cells.get(key.value or ""))])
        self._fit()

    def _measure(self, rows: Sequence[tuple[Text, ...]]) -> None:
        """Widen the columns sized by their content to the widest of `rows`' cells."""
        for i, (key, _, width) in enumerate(self.COLUMNS):
            if width is not None:  # drawn at its width whatever its content
                continue
            plains = [cells[i].plain for cells in rows]
            joined = "".join(plains)
            widest = (
                max(map(len, plains), default=0)  # what cell_len gives for printable ASCII
                if joined.isascii() and joined.isprintable()
                else max((cell_len(line) for p in plains for line in p.splitlines()), default=0)
            )
            self._natural[key] = max(self._natural[key], widest)

    def remeasure(self) -> None:
        """Make every row's cells again and size the columns to them from scratch: for a pane
        whose cells changed their form (`cells` reads something besides the row)."""
        for key, title, width in self.COLUMNS:
            if width is None:
                self._natural[key] = cell_len(title)
        self.rewrite({key: self.cells(row) for key, row in self.rows_by_key.items()})
        self._measure(list(self._cells.values()))
        self._fit()

    def _room(self) -> int:
        """How wide the rows may be drawn without a sideways scroll (0: not laid out yet)."""
        return self.scrollable_content_region.width

    def _fit(self) -> None:
        """Give each column its width: its own or its widest cell's, and a gap. When that is
        wider than the table, take the excess from the columns `FIT` names, in its order, each
        no narrower than its floor (a floor of 0 drops the column)."""
        widths = {key: self._natural[key] + GAP for key, _, _ in self.COLUMNS}
        room = self._room()
        excess = sum(widths.values()) - room if room > 0 else 0
        for key, floor in self.FIT:
            if excess <= 0:
                break
            least = floor + GAP if floor else 0
            cut = min(excess, widths[key] - least)
            if cut > 0:
                widths[key] -= cut
                excess -= cut
        for column in self.ordered_columns:
            column.width = widths[column.key.value or ""]
        header = self.header_height if self.show_header else 0
        self.virtual_size = Size(sum(widths.values()), self._total_row_height + header)
        self.refresh()

    def on_resize(self) -> None:
        self._fit()

    def _selected_key(self) -> str | None:
        row = self.selected
        return str(row.id) if row is not None else None

    def _restore(self, key: str | None) -> None:
        if key is not None and key in self.rows_by_key:
            self.move_cursor(row=self.get_row_index(key), animate=False)

    def select_id(self, row_id: int) -> bool:
        key = str(row_id)
        if key in self.rows_by_key:
            self.move_cursor(row=self.get_row_index(key), animate=False)
            return True
        return False

    # -- DataTable's caches ---------------------------------------------------------------

    def rewrite(self, rows: dict[str, tuple[Text, ...]], *, repaint: bool = True) -> None:
        """Put new cells into existing rows (keyed as added), repainting only the rows that
        changed (`repaint` False: they are being drawn already). Rows keep their height (1). A
        column sized by its content widens when a new cell outgrows it (a unit's `NO ACK` that
        came with time, an `ALERT FAILED`): what was added is never cut off; it does not narrow.
        """
        data = self._data
        written: set[tuple[RowKey, ColumnKey]] = set()
        columns = [column.key for column in self.ordered_columns]
        for key, cells in rows.items():
            before = self._cells[key]
            row_key = RowKey(key)
            for column, new, old in zip(columns, cells, before, strict=True):
                if not same(new, old):
                    data[row_key][column] = new
                    written.add((row_key, column))
            self._cells[key] = cells
        if written:
            self._forget(written, repaint=repaint)
            natural = dict(self._natural)
            self._measure([rows[key.value or ""] for key in {row for row, _ in written}])
            if self._natural != natural:
                self._fit()

    def _forget(self, cells: set[tuple[RowKey, ColumnKey]], *, repaint: bool = True) -> None:
        """Drop the cached renders of `cells` and of their rows; repaint those rows (if in view)."""
        rows = {row for row, _ in cells}
        locations = self._row_locations
        indexes = {index for key in rows if (index := locations.get(key)) is not None}
        # The rows' lines, in the table's own coordinates: every row is one line (`_add_rows`),
        # so a row's line is the header's height plus its index.
        top = self.header_height if self.show_header else 0
        width = max(self.size.width, self.virtual_size.width)
        regions = [Region(0, top + index, width, 1) for index in sorted(indexes)]
        lines = {top + index for index in indexes}
        # The cache keys (textual 8.2): a cell's start with its row's and column's keys, a row
        # line's with its row's key, a row's renderables are (update count, row index), and a
        # table line starts with its y. The row's other cells keep their cached renders.
        _evict(self._cell_render_cache, slice(0, 2), cells)
        _evict(self._row_render_cache, 0, rows)
        _evict(self._row_renderable_cache, 1, indexes)
        _evict(self._line_cache, 0, lines)
        if not repaint:
            return
        window, offset = self.window_region, self.scroll_offset
        for region in regions:
            if window.overlaps(region):  # what DataTable.refresh_row does, without its O(n) y
                self.refresh(region.translate(-offset))

    def _compute_row_renderables(self, row_index: int) -> RowRenderables:
        """DataTable's, each cell after its gap (`_Gap`)."""
        made = super()._compute_row_renderables(row_index)
        return RowRenderables(made.label, [_Gap(cell) for cell in made.cells])

    def render_lines(self, crop: Region) -> list[Strip]:
        # DataTable's cached renders do not record the column widths they were made at: it
        # counts on every change bumping its update count. Cells written by `rewrite` do not, so
        # rows drawn before the table measured new rows (the first load) would keep their
        # header-wide columns. When a width changed since the last render, no cached render is
        # reused.
        widths = tuple(column.get_render_width(self) for column in self.ordered_columns)
        if widths != self._widths_rendered:
            self._widths_rendered = widths
            self._count_update()
        if self._time_at:
            # Rows brought into view since the last tick (scrolled to, moved by a sort) get the
            # clock before they are drawn; they are being drawn, so no repaint is asked for.
            top = self.header_height if self.show_header else 0
            first = max(crop.y, top) - top + self.scroll_offset.y
            self._catch_up(
                self._keys_at(range(first, first + crop.bottom - max(crop.y, top))), repaint=False
            )
        return super().render_lines(crop)


GAP = 1  # blank cells between two columns (and before the first)


class _Gap:
    """A cell drawn after a gap, cut with an ellipsis where its column is too narrow for it.

    The gap is drawn on the left so that a cut cell still stands apart from the next column."""

    def __init__(self, cell: RenderableType) -> None:
        self.cell = cell

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width <= GAP:
            yield Segment(" " * options.max_width)
            return
        inner = options.update(
            width=options.max_width - GAP, overflow="ellipsis", no_wrap=True, height=1
        )
        yield Segment(" " * GAP)
        yield from console.render_lines(self.cell, inner, pad=True, new_lines=False)[0]


class _Places(TwoWayDict[RowKey, int]):
    """DataTable's `_row_locations` (a row's key to its index and back), kept by KeyedTable in
    step with its order: the index by the key's string (DataTable's keys hash and compare as
    their strings: "lookups using the object behave the same as lookups using the string
    itself", `StringKey`), the key by the index from a list. Rows are placed by KeyedTable
    only, never by DataTable's add_row, remove_row or sort."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        super().__init__(cast(dict[RowKey, int], self.index))
        self.keys: list[RowKey] = []

    def __setitem__(self, key: RowKey, value: int) -> None:
        raise TypeError("a KeyedTable places its rows itself")

    def __delitem__(self, key: RowKey) -> None:
        raise TypeError("a KeyedTable places its rows itself")

    def get_key(self, value: int) -> RowKey | None:
        return self.keys[value] if 0 <= value < len(self.keys) else None

    def contains_value(self, value: int) -> bool:
        return 0 <= value < len(self.keys)


_Key = TypeVar("_Key", bound=tuple[Any, ...])


def _evict(cache: LRUCache[_Key, Any], position: int | slice, wanted: Container[object]) -> None:
    """Discard the entries of `cache` whose key has one of `wanted` at `position`."""
    keys = cache.keys()
    for key in [k for k in keys if k[position] in wanted]:
        cache.discard(key)


def same(new: Text, old: Text) -> bool:
    """Whether a cell would look the same (rich's Text equality ignores the base style)."""
    return new == old and new.style == old.style
