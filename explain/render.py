"""Heatmaps and attributions -> images a person looks at (numpy uint8 and PNG bytes)."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

COLORMAPS = ("jet", "inferno", "viridis", "magma", "turbo", "gray")


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 through a matplotlib colour map."""
    if cmap not in colormaps:
        raise ValueError(f"unknown colour map {cmap!r}")
    rgba = colormaps[cmap](np.clip(heatmap, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(image: Image.Image | np.ndarray, heatmap: np.ndarray, alpha: float = 0.5,
            cmap: str = "jet") -> np.ndarray:
    """The image with the coloured heatmap over it. A pixel's opacity grows with the map's value
    there, up to ``alpha`` at its largest values: where the map says nothing the photo shows
    as it is (a uniform blend tinted the whole photo with the colour map's low end, a dark blue
    wash under the sparse maps of gradient methods)."""
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if base.shape[:2] != heatmap.shape:
        raise ValueError(f"heatmap {heatmap.shape} does not match the image {base.shape[:2]}")
    shown = _without_outliers(heatmap)
    return _blend(base, colorize(shown, cmap), alpha * shown)


OUTLIERS = 2.0  # percent of the largest values drawn at full strength, as Captum's outlier_perc


def _without_outliers(heatmap: np.ndarray) -> np.ndarray:
    """``heatmap`` divided by its 98th percentile and clipped to [0, 1], as Captum draws
    attributions: a gradient map's few largest values otherwise make the rest invisible. A map
    that is zero beyond its top 2% is left as it is."""
    heatmap = np.clip(heatmap, 0.0, 1.0)
    top = float(np.percentile(heatmap, 100 - OUTLIERS))
    return np.clip(heatmap / top, 0.0, 1.0) if top > 0 else heatmap


def _blend(base: np.ndarray, colored: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    weight = opacity.astype(np.float32)[..., None]
    mixed = (1 - weight) * base.astype(np.float32) + weight * colored.astype(np.float32)
    return np.clip(mixed, 0, 255).round().astype(np.uint8)


# How a signed map is shown (as Captum's ``visualize_image_attr`` ``sign``): the method's own
# heatmap, its positive part, its negative part, or both in two colours
SIGNS = ("heatmap", "positive", "negative", "all")


def signed_map(raw: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A signed attribution ((h, w), or (3, h, w) summed over its channels, as Captum shows
    one) at ``shape`` = (H, W), bilinear, divided by its largest absolute value: in [-1, 1]."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim == 3:
        raw = raw.sum(axis=0)
    if raw.shape != tuple(shape):
        raw = np.asarray(Image.fromarray(raw, mode="F").resize((shape[1], shape[0]),
                                                                Image.Resampling.BILINEAR))
    peak = float(np.abs(raw).max())
    return raw / peak if peak > 0 else np.zeros_like(raw)


def is_signed(raw: np.ndarray) -> bool:
    """Whether an attribution has negative evidence to show."""
    return bool((np.asarray(raw) < 0).any())


def overlay_signed(image: Image.Image | np.ndarray, raw: np.ndarray, alpha: float = 0.5,
                   sign: str = "all", cmap: str = "jet") -> np.ndarray:
    """A signed attribution ``raw`` over the image: its positive or negative part alone (through
    ``cmap``, as ``overlay``), or ``"all"``: positive red, negative blue, each as opaque as it is
    strong."""
    if sign not in SIGNS[1:]:
        raise ValueError(f"unknown sign {sign!r}")
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    values = signed_map(raw, base.shape[:2])
    if sign == "positive":
        return overlay(base, np.clip(values, 0, 1), alpha, cmap)
    if sign == "negative":
        return overlay(base, np.clip(-values, 0, 1), alpha, cmap)
    colored = np.where((values >= 0)[..., None], np.array(POSITIVE, np.uint8),
                       np.array(NEGATIVE, np.uint8))
    return _blend(base, colored, alpha * _without_outliers(np.abs(values)))


POSITIVE, NEGATIVE = (220, 30, 30), (30, 80, 230)  # "all": red for, blue against the class


def gradient_image(raw: np.ndarray) -> np.ndarray:
    """A signed (3, h, w) gradient as an RGB picture: zero is grey, scaled by its 99.5th percentile
    (the usual way guided backprop is shown)."""
    if raw.ndim != 3:
        raise ValueError("gradient_image takes a (3, h, w) attribution")
    scale = float(np.percentile(np.abs(raw), 99.5)) or 1.0
    pixels = 0.5 + 0.5 * np.clip(raw / scale, -1, 1)
    return (pixels.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def signed_image(raw: np.ndarray, cmap: str = "RdBu_r") -> np.ndarray:
    """A signed (h, w) map as colours: red positive, blue negative, white zero."""
    scale = float(np.abs(raw).max()) or 1.0
    return colorize(0.5 + 0.5 * raw / scale, cmap) if cmap in colormaps else colorize(raw, "jet")


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(pixels: np.ndarray, quality: int = 92) -> bytes:
    """For the screen: 2 ms and about 120 KB for a 741x500 photo, where PNG takes 150 ms and
    630 KB (downloads stay PNG, made when clicked)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


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
    """A signed (h, w) map as a plotly heatmap, diverging around zero (red: for the class)."""
    go = _plotly()

    limit = float(np.abs(raw).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=raw, colorscale="RdBu", reversescale=True, zmid=0,
                               zmin=-limit, zmax=limit,
                               hovertemplate="(%{x}, %{y}): %{z:.4g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=title, height=360, margin=dict(l=0, r=0, t=TOOLBAR + 6, b=0))
    return fig


def raw_picture(raw: np.ndarray) -> np.ndarray:
    """The raw attribution as an RGB picture: gradients as colour, 2-D maps red/blue."""
    return gradient_image(raw) if raw.ndim == 3 else signed_image(raw)


PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac")


def image_uri(pixels: np.ndarray | Image.Image, quality: int = 85) -> str:
    """A small picture as a JPEG data URI, for a plotly layout image."""
    return "data:image/jpeg;base64," + base64.b64encode(
        jpeg_bytes(np.asarray(pixels), quality)).decode("ascii")


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
    above, a fixed sample of ``limit`` is, drawn over a density image of all of them (a map of
    100,000 markers took 0.9 s a frame to pan with software rendering, and a box or a lasso
    selects from all points on the server anyway: ``explain.embedding.inside_shapes``).
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


def curves_figure(curves: dict, kind: str):
    """Deletion or insertion curves (``kind``) of several maps: probability against the share of
    pixels removed or revealed, the area under each in the legend."""
    go = _plotly()

    fig = go.Figure()
    for g, (name, c) in enumerate(curves.items()):
        values = c.deletion if kind == "deletion" else c.insertion
        auc = c.deletion_auc if kind == "deletion" else c.insertion_auc
        fig.add_trace(go.Scatter(x=c.fractions, y=values, mode="lines", name=f"{name} ({auc:.3f})",
                                 line=dict(color=PALETTE[g % len(PALETTE)],
                                           dash="dot" if name.startswith("random") else "solid")))
    verb = "removed" if kind == "deletion" else "revealed"
    fig.update_layout(title=f"{kind.capitalize()} (area under the curve)", height=300,
                      margin=dict(l=0, r=0, t=40, b=0), legend=dict(orientation="h", y=-0.25),
                      xaxis=dict(title=f"share of pixels {verb}", tickformat=".0%"),
                      yaxis=dict(title="class probability", range=[0, 1]))
    return fig
