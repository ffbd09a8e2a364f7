"""A DataTable whose rows are rewritten in place and repaint alone.

`DataTable.update_cell` counts an update that is part of every cached cell's and line's key, so
one changed cell makes every visible cell of the table render again: on a desk with hundreds of
rows and a clock, that was most of the time a change took to show. `RowTable.rewrite` writes the
changed cells into the table's data, drops only those cells' and rows' cached renders, and
repaints only those rows.

This reaches into DataTable's caches (Textual's own notes on per-coordinate invalidation:
Textualize/textual#1483). textual is pinned, and tests/test_desk.py fails if a new version lays
the caches out differently. Everything that knows the caches' layout is in this module.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, TypeVar

from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey


class RowTable(DataTable[Text]):
    """A DataTable of rich Text cells keyed by string row keys, rewritten row by row."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Each row's cells as last written, in column order.
        self._cells: dict[str, tuple[Text, ...]] = {}
        # The column widths the cached renders were made at (see render_lines).
        self._widths_rendered: tuple[int, ...] = ()

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
