"""The one keyed table: rows keyed by id, diffed in place, sorted, the cursor kept on its row.

It owns everything that touches DataTable's internals. Panes say only what their rows look like
(columns, cells, sort key, which rows they take) and `sync` does the rest: stale keys removed, only
changed cells rewritten (and only their rows repainted), new rows added, re-sorted only when the
order changed, the cursor restored to the same row.

Why the rewrite reaches into the caches:
`DataTable.update_cell` counts an update that is part of every cached cell's and line's key, so
one changed cell makes every visible cell of the table render again: on a desk with hundreds of
rows and a clock, that was most of the time a change took to show. `KeyedTable.rewrite` writes the
changed cells into the table's data, drops only those cells' and rows' cached renders, and
repaints only those rows.

This reaches into DataTable's caches (Textual's own notes on per-coordinate invalidation:
Textualize/textual#1483). textual is pinned, and tests/test_desk.py fails if a new version lays
the caches out differently. Everything that knows the caches' layout is in this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Container, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey


class Keyed(Protocol):
    @property
    def id(self) -> int: ...


Row = TypeVar("Row", bound=Keyed)


class KeyedTable(DataTable[Text], Generic[Row]):
    """A DataTable of rich Text cells, one row per domain row keyed by its id."""

    COLUMNS: ClassVar[Sequence[tuple[str, str, int | None]]] = ()  # (key, label, width)
    TIME_COLUMNS: ClassVar[frozenset[str]] = frozenset()  # what the running clock changes

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
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
        # Columns exist from the start: a snapshot can arrive before the table is mounted, and
        # rows added to a table without columns would size every column by its header alone.
        for key, title, width in self.COLUMNS:
            self.add_column(title, key=key, width=width)

    # -- what a subclass says ----------------------------------------------------------------

    def accepts(self, row: Row) -> bool:
        return True

    def cells(self, row: Row) -> tuple[Text, ...]:
        raise NotImplementedError

    def time_cells(self, row: Row) -> tuple[Text, ...]:
        """The cells of TIME_COLUMNS alone, in COLUMNS order: all the clock changes."""
        cells = self.cells(row)
        return tuple(cells[i] for i in self._time_at)

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
        given = {str(r.id): r for r in rows}
        stale = [
            k
            for k in self.rows_by_key
            if (full and k not in given) or (k in given and not self.accepts(given[k]))
        ]
        for key in stale:
            self._remove(key)
        moved = bool(stale)
        order_changed = False
        added: list[str] = []
        changed: dict[str, tuple[Text, ...]] = {}
        for key, row in given.items():
            if not self.accepts(row):
                continue
            cells = self.cells(row)
            old = self.rows_by_key.get(key)
            if old is None:
                added.append(key)
                self._cells[key] = cells
            else:
                changed[key] = cells
                order_changed = order_changed or self.sort_key(old) != self.sort_key(row)
            self.rows_by_key[key] = row
        self.rewrite(changed)
        if added:
            # New rows go in sorted among themselves: into an empty table (the first load) they
            # then need no sort at all.
            order_changed = order_changed or self.row_count > 0
            moved = True
            added.sort(key=lambda k: self.sort_key(self.rows_by_key[k]))
            for key in added:
                self.add_row(*self._cells[key], key=key)
        if order_changed and self._sort():
            moved = True
        if moved:
            self._restore(kept_key)
        self.rows_changed()

    def tick(self, now: datetime) -> None:
        """Advance the running clocks: only the time columns are touched."""
        self.now = now
        at = self._time_at
        if not at:
            return
        changed: dict[str, tuple[Text, ...]] = {}
        for key, row in self.rows_by_key.items():
            times = self.time_cells(row)
            cells = self._cells[key]
            if any(not same(new, cells[i]) for new, i in zip(times, at, strict=True)):
                fresh = list(cells)
                for new, i in zip(times, at, strict=True):
                    fresh[i] = new
                changed[key] = tuple(fresh)
        self.rewrite(changed)

    def _sort(self) -> bool:
        """Put the rows in sort_key order; False (and nothing repainted) if they already are."""
        if self.row_count < 2:
            return False
        wanted = sorted(self.rows_by_key, key=lambda k: self.sort_key(self.rows_by_key[k]))
        if [row.key.value for row in self.ordered_rows] == wanted:
            return False
        rank = {self._cells[k][0].plain: i for i, k in enumerate(wanted)}
        self.sort(self.COLUMNS[0][0], key=lambda cell: rank.get(cell.plain, 0))
        return True

    def _remove(self, key: str) -> None:
        with contextlib.suppress(RowDoesNotExist):
            self.remove_row(key)
        self.rows_by_key.pop(key, None)
        self._cells.pop(key, None)

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

    def rewrite(self, rows: dict[str, tuple[Text, ...]]) -> None:
        """Put new cells into existing rows (keyed as added), repainting only the rows that
        changed. Rows keep their height (1) and columns their width, as `update_cell` keeps them.
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
            self._forget(written)

    def _forget(self, cells: set[tuple[RowKey, ColumnKey]]) -> None:
        """Drop the cached renders of `cells` and of their rows; repaint those rows (if in view)."""
        rows = {row for row, _ in cells}
        locations = self._row_locations
        indexes = {index for key in rows if (index := locations.get(key)) is not None}
        # The rows' lines, in the table's own coordinates (below the header), found in one pass.
        regions: list[Region] = []
        lines: set[int] = set()
        y = self.header_height if self.show_header else 0
        width = max(self.size.width, self.virtual_size.width)
        for index, row in enumerate(self.ordered_rows):
            if index in indexes:
                regions.append(Region(0, y, width, row.height))
                lines.update(range(y, y + row.height))
            y += row.height
        # The cache keys (textual 8.2): a cell's start with its row's and column's keys, a row
        # line's with its row's key, a row's renderables are (update count, row index), and a
        # table line starts with its y. The row's other cells keep their cached renders.
        _evict(self._cell_render_cache, slice(0, 2), cells)
        _evict(self._row_render_cache, 0, rows)
        _evict(self._row_renderable_cache, 1, indexes)
        _evict(self._line_cache, 0, lines)
        window, offset = self.window_region, self.scroll_offset
        for region in regions:
            if window.overlaps(region):  # what DataTable.refresh_row does, without its O(n) y
                self.refresh(region.translate(-offset))

    def render_lines(self, crop: Region) -> list[Strip]:
        # DataTable's cached renders do not record the column widths they were made at: it
        # counts on every change bumping its update count. Cells written by `rewrite` do not, so
        # rows drawn before the table measured new rows (the first load) would keep their
        # header-wide columns. When a width changed since the last render, no cached render is
        # reused.
        widths = tuple(column.get_render_width(self) for column in self.ordered_columns)
        if widths != self._widths_rendered:
            self._widths_rendered = widths
            self._update_count += 1
        return super().render_lines(crop)


_Key = TypeVar("_Key", bound=tuple[Any, ...])


def _evict(cache: LRUCache[_Key, Any], position: int | slice, wanted: Container[object]) -> None:
    """Discard the entries of `cache` whose key has one of `wanted` at `position`."""
    keys = cache.keys()
    for key in [k for k in keys if k[position] in wanted]:
        cache.discard(key)


def same(new: Text, old: Text) -> bool:
    """Whether a cell would look the same (rich's Text equality ignores the base style)."""
    return new == old and new.style == old.style
