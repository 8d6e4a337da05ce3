"""Plotly figures: top-k bars, maps, the embedding map, confusion matrices, curves. Every text that
comes from a user is escaped here.
"""

from __future__ import annotations

import html

import numpy as np


def _plotly():
    """plotly.graph_objects, imported after pandas: plotly asks sys.modules whether pandas is
    loaded, and a pandas that another thread is still importing is visible there half done
    (an import statement, unlike that lookup, waits for the other thread to finish)."""
    import pandas  # noqa: F401
    import plotly.graph_objects as go

    return go


def label(text: object, limit: int = 80) -> str:
    """``text`` for a plotly label or hover text. Plotly renders a subset of HTML there (links
    included), and class names, folder names and file names come from users' files: they are
    shown as the characters they hold (HTML-escaped, one line, cut to ``limit``)."""
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return html.escape(text, quote=False)


# plotly's toolbar (its modebar) sits over the top right of a figure: a top margin at least its
# height keeps it off the first bar's value and the legend's first entry
TOOLBAR = 36


def topk_figure(predictions, selected: int | None = None):
    """Horizontal bars of the top classes (``Prediction`` objects), best on top.

    Each bar carries its class index as ``customdata`` so a click can re-target explanations.
    """
    go = _plotly()

    preds = list(reversed(predictions))
    colors = ["#e4572e" if p.index == selected else "#4c78a8" for p in preds]
    fig = go.Figure(go.Bar(
        x=[p.probability for p in preds], y=[label(f"{p.name} ({p.index})") for p in preds],
        orientation="h", customdata=[p.index for p in preds], marker_color=colors,
        text=[f"{p.probability:.1%}" for p in preds], textposition="auto",
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    fig.update_layout(height=86 + 36 * len(preds), margin=dict(l=0, r=10, t=TOOLBAR, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title="probability"),
                      clickmode="event+select")
    return fig


def map_figure(raw: np.ndarray, title: str = ""):
    """A (h, w) map as a plotly heatmap: a signed one diverging around zero (red: for the
    class, blue against it); one that is never negative (Grad-CAM, an activation) from 0 to its
    top, in the red half alone (a bar from -x to x said it had negative values)."""
    go = _plotly()

    limit = float(np.abs(raw).max()) or 1.0
    if (np.asarray(raw) < 0).any():
        scale = dict(colorscale="RdBu", reversescale=True, zmid=0, zmin=-limit, zmax=limit)
    else:
        scale = dict(colorscale=[[0.0, "#f7f7f7"], [0.5, "#f4a582"], [1.0, "#b2182b"]],
                     zmin=0, zmax=limit)
    fig = go.Figure(go.Heatmap(z=raw, **scale,
                               hovertemplate="(%{x}, %{y}): %{z:.4g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=title, height=360, margin=dict(l=0, r=0, t=TOOLBAR + 6, b=0))
    return fig


PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac")


DRAWN_POINTS = 20_000  # above this a map draws a sample of its points over the density of all


def drawn_rows(count: int, selected: int | None = None, limit: int = DRAWN_POINTS) -> np.ndarray:
    """Which of ``count`` points a map draws as markers: all up to ``limit``, else a fixed
    random sample of ``limit`` (the same on every run), the ``selected`` point included."""
    if count <= limit:
        return np.arange(count)
    rows = np.random.default_rng(0).choice(count, limit, replace=False)
    if selected is not None and 0 <= selected < count and selected not in rows:
        rows[0] = selected
    return np.sort(rows)


def embedding_figure(points: np.ndarray, groups: np.ndarray, names: list[str], hover: list[str],
                     title: str = "", selected: int | None = None,
                     thumbnails: list[tuple[int, str]] | None = None, side: float = 1.0,
                     limit: int = DRAWN_POINTS):
    """A WebGL scatter of a 2-D map: one trace per group, so the legend toggles groups;
    ``customdata`` holds each point's row. Up to ``limit`` points every point is a marker;
    above, a fixed sample of ``limit`` is, drawn over a density image of all of them (a box or
    a lasso selects from all points on the server: ``explain.analysis.selection.inside_shapes``).
    ``thumbnails``: (row, image URI) pairs drawn centred on their points, ``side`` map units
    wide (they grow as the map is zoomed, like the points' spacing)."""
    go = _plotly()

    fig = go.Figure()
    rows_drawn = drawn_rows(len(points), selected, limit)
    sampled = len(rows_drawn) < len(points)
    if sampled:
        fig.add_trace(_density(go, points))
    hover = np.asarray([label(hover[i], 300) for i in rows_drawn], dtype=object)
    drawn_groups = np.asarray(groups)[rows_drawn]
    for g, name in enumerate(names):
        where = np.flatnonzero(drawn_groups == g)
        if where.size == 0:
            continue
        rows = rows_drawn[where]
        fig.add_trace(go.Scattergl(
            x=points[rows, 0], y=points[rows, 1], mode="markers", name=label(name),
            marker=dict(size=3 if sampled else 5, color=PALETTE[g % len(PALETTE)],
                        opacity=0.75),
            customdata=rows, text=hover[where], hovertemplate="%{text}<extra></extra>",
        ))
    if selected is not None:
        fig.add_trace(go.Scattergl(x=[points[selected, 0]], y=[points[selected, 1]],
                                   mode="markers", name="selected", hoverinfo="skip",
                                   marker=dict(size=16, color="rgba(0,0,0,0)",
                                               line=dict(width=3, color="black"))))
    fig.update_layout(title=title, height=620, margin=dict(l=0, r=0, t=TOOLBAR + 6, b=0),
                      legend=dict(itemsizing="constant"), dragmode="pan", clickmode="event+select")
    if thumbnails:
        fig.update_layout(images=[dict(
            source=uri, xref="x", yref="y", x=float(points[row, 0]), y=float(points[row, 1]),
            sizex=side * 0.92, sizey=side * 0.92, xanchor="center", yanchor="middle",
            sizing="contain", layer="above", name=f"thumbnail {row}") for row, uri in thumbnails])
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False, scaleanchor="x")
    return fig


def _density(go, points: np.ndarray, bins: int = 256):
    """How many points fall in each of ``bins`` x ``bins`` cells, as a grey image under the
    markers (empty cells transparent)."""
    counts, xs, ys = np.histogram2d(points[:, 0], points[:, 1], bins=bins)
    shade = np.log1p(counts.T)
    shade[counts.T == 0] = np.nan
    return go.Heatmap(x=(xs[:-1] + xs[1:]) / 2, y=(ys[:-1] + ys[1:]) / 2, z=shade,
                      colorscale=[[0, "#e6e6e6"], [1, "#404040"]], showscale=False,
                      hoverinfo="skip", name=f"all {len(points):,} points", showlegend=True)


def confusion_figure(matrix: np.ndarray, classes: list[str]):
    """Rows: true class; columns: predicted. Counts in the cells; a click on a cell selects it.

    Plotly heatmaps take no selection, so every cell also carries an invisible square marker
    (a scatter point, which does) whose ``customdata`` is ``[row, column]``."""
    go = _plotly()

    n = len(classes)
    names = [label(c, 40) for c in classes]
    rows, cols = np.divmod(np.arange(n * n), n)
    fig = go.Figure(go.Heatmap(
        z=matrix, x=list(range(n)), y=list(range(n)), colorscale="Blues", text=matrix,
        texttemplate="%{text}", hoverinfo="skip", showscale=False,
    ))
    fig.add_trace(go.Scatter(
        # a plain list: plotly sends a numpy array as a typed array, and each point's
        # customdata would then reach the click handler as {"0": row, "1": column}
        x=cols, y=rows, mode="markers", customdata=np.stack([rows, cols], axis=1).tolist(),
        marker=dict(symbol="square", size=36, color="rgba(0,0,0,0)"), showlegend=False,
        text=[f"true {names[r]}, predicted {names[c]}: {matrix[r, c]}" for r, c in zip(
            rows, cols, strict=True)], hovertemplate="%{text}<extra></extra>",
    ))
    ticks = dict(tickmode="array", tickvals=list(range(n)), ticktext=names, showgrid=False,
                 zeroline=False)
    fig.update_yaxes(autorange="reversed", title="true class", **ticks)
    fig.update_xaxes(title="predicted class", side="top", **ticks)
    fig.update_layout(height=120 + 40 * n, margin=dict(l=0, r=0, t=60, b=0),
                      clickmode="event+select", dragmode=False)
    return fig


def accuracy_figure(rows: list[tuple[str, float]]):
    """k-NN accuracies of feature sets (label, accuracy) as horizontal bars."""
    go = _plotly()

    fig = go.Figure(go.Bar(x=[a for _, a in rows], y=[label(n) for n, _ in rows], orientation="h",
                           text=[f"{a:.1%}" for _, a in rows], textposition="auto",
                           marker_color=["#bab0ac" if n.startswith("raw pixels") else "#4c78a8"
                                         for n, _ in rows]))
    fig.update_layout(height=106 + 34 * len(rows), margin=dict(l=0, r=10, t=TOOLBAR, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title="cross-validated k-NN accuracy"))
    return fig


def curves_figure(curves: dict, kind: str, score: str = "class probability",
                  top: float | None = 1.0):
    """Deletion or insertion curves (``kind``) of several maps: the ``score`` (a probability by
    default; a box's score up to 2; a region's summed logits: ``top`` None, the curves' own
    range) against the share of pixels removed or revealed, the area under each in the
    legend."""
    go = _plotly()

    fig = go.Figure()
    for g, (name, c) in enumerate(curves.items()):
        values = c.deletion if kind == "deletion" else c.insertion
        auc = c.deletion_auc if kind == "deletion" else c.insertion_auc
        fig.add_trace(go.Scatter(x=c.fractions, y=values, mode="lines", name=f"{name} ({auc:.3f})",
                                 line=dict(color=PALETTE[g % len(PALETTE)],
                                           dash="dot" if name.startswith("random") else "solid")))
    verb = "removed" if kind == "deletion" else "revealed"
    fig.update_layout(title=dict(text=f"{kind.capitalize()} (area under the curve)",
                                 font=dict(size=14)), height=320,
                      margin=dict(l=0, r=0, t=40, b=0), legend=dict(orientation="h", y=-0.3),
                      xaxis=dict(title=f"share of pixels {verb}", tickformat=".0%",
                                 automargin=True),
                      yaxis=dict(title=dict(text=score, font=dict(size=12)), automargin=True,
                                 range=[0, top] if top is not None else None))
    return fig


def detections_figure(pixels: np.ndarray, boxes, captions, height: int = 520):
    """An image with its detections drawn in (``pixels``, see ``pictures.boxes_drawn``) as a
    plotly figure a click can pick a box in: a grid of 3 x 3 faint points over each box carries
    the box's index (``customdata``), its caption on hover. Boxes that are the same box (one
    box, two classes) share it in vertical strips, one a class, so each can be clicked."""
    from explain.render.pictures import box_groups

    go = _plotly()

    xs, ys, index, texts = [], [], [], []
    for (x0, y0, x1, y1), members in box_groups(boxes, (pixels.shape[1], pixels.shape[0])):
        strip = (x1 - x0) / len(members)
        for k, i in enumerate(members):
            for fx in (0.25, 0.5, 0.75):
                for fy in (0.25, 0.5, 0.75):
                    xs.append(x0 + (k + fx) * strip)
                    ys.append(y0 + fy * (y1 - y0))
                    index.append(i)
                    texts.append(label(captions[i]))
    fig = go.Figure(go.Image(z=pixels, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", customdata=index, text=texts,
                             marker=dict(size=18, color="rgba(255,255,255,0.01)"),
                             hovertemplate="%{text}: click to explain<extra></extra>",
                             showlegend=False))
    fig.update_xaxes(visible=False, range=[0, pixels.shape[1]])
    fig.update_yaxes(visible=False, range=[pixels.shape[0], 0], scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=TOOLBAR, b=0), dragmode=False,
                      clickmode="event+select")
    return fig


def segmentation_figure(pixels: np.ndarray, labels: np.ndarray, names, step: int = 8,
                        height: int = 520):
    """A label map drawn over its image (``pixels``, see ``pictures.labels_drawn``) as a plotly
    figure to click a region in or draw a box on: a grid of faint points every ``step`` pixels
    carries each point's (x, y, label) (``customdata``) and its class on hover; the box tool
    selects a box (its range)."""
    go = _plotly()

    h, w = labels.shape
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    xs, ys = xs.ravel(), ys.ravel()
    under = labels[ys, xs]
    texts = [label(names[int(k)]) for k in under]
    fig = go.Figure(go.Image(z=pixels, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=xs.tolist(), y=ys.tolist(), mode="markers",
                             customdata=np.stack([xs, ys, under], 1).tolist(), text=texts,
                             marker=dict(size=step + 2, color="rgba(255,255,255,0.01)"),
                             hovertemplate="%{text}: click for its region<extra></extra>",
                             showlegend=False))
    fig.update_xaxes(visible=False, range=[0, w])
    fig.update_yaxes(visible=False, range=[h, 0], scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=TOOLBAR, b=0), dragmode=False,
                      clickmode="event+select")  # a click picks; the toolbar's box tool draws
    return fig
