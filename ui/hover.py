"""A point's thumbnail under the mouse on a plotly map.

Plotly's hover label cannot hold an image and ``st.plotly_chart`` gives the server no hover
events. So a small component (``st.components.v2``: its script runs in the page) listens to the
chart's ``plotly_hover``, sends the point's row (after the mouse rests 120 ms), and the server
answers in a fragment run (the page itself does not rerun) with that image's thumbnail, which is
drawn beside the mouse until it leaves the point. The caption is set as text, never as HTML."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

_HTML = "<div class='preview' style='display:none'><img alt=''><div class='caption'></div></div>"

_CSS = """
.preview { position: fixed; z-index: 1000; pointer-events: none; background: white;
           border: 1px solid #bbb; border-radius: 4px; padding: 4px;
           box-shadow: 0 2px 8px rgba(0, 0, 0, 0.25); max-width: 180px; }
.preview img { display: block; width: 128px; height: auto; image-rendering: auto; }
.preview .caption { font: 12px sans-serif; color: #333; margin-top: 2px;
                    overflow-wrap: anywhere; }
"""

_JS = """
export default function (component) {
    const { data, setStateValue, parentElement } = component;
    const box = parentElement.querySelector('.preview');
    const img = box.querySelector('img');
    const caption = box.querySelector('.caption');
    const memory = (window.__cnnLensHover = window.__cnnLensHover || {});
    const chart = () => document.querySelector(
        '.st-key-' + data.chart + ' .js-plotly-plot');
    const place = () => {
        box.style.left = Math.min(memory.x + 16, window.innerWidth - 200) + 'px';
        box.style.top = Math.min(memory.y + 16, window.innerHeight - 200) + 'px';
    };
    const show = () => {
        if (data.uri && memory.row === data.row) {
            img.src = data.uri;
            caption.textContent = data.caption || '';
            box.setAttribute('data-row', String(data.row));
            box.style.display = 'block';
            place();
        } else {
            box.style.display = 'none';
        }
    };
    const hover = (event) => {
        const point = event.points && event.points[0];
        if (!point || point.customdata === undefined) return;
        const row = Number(point.customdata);
        memory.x = event.event ? event.event.clientX : 0;
        memory.y = event.event ? event.event.clientY : 0;
        memory.row = row;
        clearTimeout(memory.timer);
        if (row === data.row && data.uri) { show(); return; }
        box.style.display = 'none';
        memory.timer = setTimeout(() => setStateValue('row', row), 120);
    };
    const unhover = () => {
        clearTimeout(memory.timer);
        memory.row = null;
        box.style.display = 'none';
    };
    let attached = null;
    const attach = () => {
        const gd = chart();
        if (!gd || !gd.on || gd === attached) return;
        attached = gd;
        gd.on('plotly_hover', hover);
        gd.on('plotly_unhover', unhover);
    };
    attach();
    show();
    const poll = setInterval(attach, 500);  // the chart is drawn anew on each run of the page
    return () => {
        clearInterval(poll);
        if (attached && attached.removeListener) {
            attached.removeListener('plotly_hover', hover);
            attached.removeListener('plotly_unhover', unhover);
        }
    };
}
"""

_component = st.components.v2.component("cnn_lens_hover_preview", html=_HTML, css=_CSS, js=_JS)


def preview(chart_key: str, thumbnail: Callable[[int], tuple[str, str] | None]) -> None:
    """Thumbnails on hover for the plotly chart of key ``chart_key`` (whose points carry their
    row in ``customdata``); ``thumbnail(row)`` gives (image URI, caption) or None for a row that
    is not one. Call it from the page; it runs in its own fragment."""
    state_key = f"{chart_key}_hover"

    @st.fragment
    def hovering() -> None:
        result = st.session_state.get(state_key)
        row = result.get("row") if hasattr(result, "get") else None
        payload: dict = {"chart": chart_key, "row": None}
        if isinstance(row, int | float) and not isinstance(row, bool) and row == int(row):
            shown = thumbnail(int(row))
            if shown is not None:
                payload.update(row=int(row), uri=shown[0], caption=shown[1])
        _component(key=state_key, data=payload, height="content", on_row_change=lambda: None)

    hovering()
