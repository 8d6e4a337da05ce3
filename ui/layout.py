"""Layout pieces the pages share."""

from __future__ import annotations

import streamlit as st


def grid(count: int, per_row: int, where=None) -> list:
    """``count`` cells in rows of ``per_row``, in reading order. Each row is a row of columns of
    its own, so a row is as tall as its tallest card (one set of columns for every card made
    ragged columns), and the page's order, which the keyboard and a screen reader follow, is
    the cards' order (it read column by column: #1, #5, #9, ...)."""
    where = where or st
    cells: list = []
    for start in range(0, count, per_row):
        cells += where.columns(per_row)[: min(per_row, count - start)]
    return cells


def confusion_chart(figure, chart: str, size: int, param: str = "ocell"):
    """A confusion figure whose cell a click picks (into the link parameter ``param``); the
    picked (row, column) within a ``size`` x ``size`` matrix, or None."""
    from ui import links

    st.plotly_chart(figure, key=chart, on_select=links.cell_picker(chart, param),
                    selection_mode="points", config={"displaylogo": False})
    cell = links.get(param)
    if cell is None:
        return None
    row, col = (int(v) for v in cell.split(","))
    if row < size and col < size:
        return row, col
    from ui.text import quoted
    links.note(f"{param} = {quoted(cell)} is outside this {size} x {size} matrix")
    links.put(param, None)
    return None
