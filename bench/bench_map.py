"""A map of 100,000 points (issue 10): the projection in the helper process (goal: <= 2 min on
2 cores, UMAP's compile excluded), the figure the page sends (its JSON), and the figure drawn,
panned and box-selected in Chromium (Playwright, plotly.js from the installed plotly package,
no server): times to draw, to pan and to select, and whether the selection is right.

    python bench/bench_map.py [--points 100000] [--skip-projection]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def features(n: int, dims: int = 1280, classes: int = 10) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, dims)).astype(np.float32) * 3
    labels = rng.integers(0, classes, n)
    return (centres[labels] + rng.normal(size=(n, dims)).astype(np.float32)), labels


def projection(vectors: np.ndarray) -> np.ndarray:
    from serving.projector import Projector

    helper = Projector(nice=0)
    try:
        helper.warm_up()
        helper.ready.wait()
        start = time.perf_counter()
        points = helper.project(vectors, "umap")
        print(f"UMAP of {len(vectors):,} x {vectors.shape[1]} in the helper: "
              f"{time.perf_counter() - start:.0f} s (goal <= 120 s)")
        return points
    finally:
        helper.close()


def browser(points: np.ndarray, labels: np.ndarray) -> None:
    import plotly
    from playwright.sync_api import sync_playwright

    from explain.render.figures import DRAWN_POINTS, embedding_figure

    names = [f"class {i}" for i in range(int(labels.max()) + 1)]
    hover = [f"#{i} · {names[g]}" for i, g in enumerate(labels)]
    start = time.perf_counter()
    spec = embedding_figure(points, labels, names, hover).to_json()
    print(f"figure JSON for {len(points):,} points: {len(spec) / 1e6:.1f} MB in "
          f"{time.perf_counter() - start:.1f} s")
    script = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "map.html"
        page_file.write_text(
            "<html><body style='margin:0'><div id='map' style='width:1000px;height:620px'>"
            f"</div><script>{script.read_text()}</script><script>window.spec = {spec};"
            "window.t0 = performance.now(); Plotly.newPlot('map', spec.data, spec.layout)"
            ".then(() => { window.drawn = performance.now() - window.t0; });"
            "document.getElementById('map').on('plotly_selected', e => {"
            " window.selected = e ? e.points.map(p => p.customdata) : [];"
            " window.shape = document.getElementById('map').layout.selections[0]; });</script>"
            "</body></html>")
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                          args=["--no-sandbox", "--use-gl=swiftshader",
                                                "--enable-unsafe-swiftshader"])
            page = chromium.new_page(viewport={"width": 1000, "height": 700})
            page.goto(page_file.as_uri())
            page.wait_for_function("() => window.drawn !== undefined", timeout=120_000)
            drawn = page.evaluate("window.drawn") / 1000
            box = page.locator("#map .nsewdrag").first.bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            start = time.perf_counter()  # a pan: drag the plot; the page must keep answering
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.mouse.move(cx + 120, cy + 60, steps=10)
            page.mouse.up()
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
            panned = time.perf_counter() - start
            page.evaluate("() => Plotly.relayout('map', {dragmode: 'select'})")
            x0, y0, x1, y1 = page.evaluate("""() => { const gd = document.getElementById('map');
                const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                const at = (f, a) => a.range[0] + f * (a.range[1] - a.range[0]);
                const r = gd.getBoundingClientRect();
                return [r.left + xa._offset + xa.l2p(at(0.4, xa)), r.top + ya._offset + ya.l2p(at(0.4, ya)),
                        r.left + xa._offset + xa.l2p(at(0.6, xa)), r.top + ya._offset + ya.l2p(at(0.6, ya))];
            }""")
            start = time.perf_counter()
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x1, y1, steps=10)
            page.mouse.up()
            page.wait_for_function("() => window.selected !== undefined", timeout=120_000)
            chose = time.perf_counter() - start
            marked = page.evaluate("window.selected.length")
            shape = page.evaluate("window.shape")
            chromium.close()
    # what the page does with the box: every point inside it, drawn or not
    from explain.analysis.selection import inside_shapes

    xs, ys = sorted((shape["x0"], shape["x1"])), sorted((shape["y0"], shape["y1"]))
    selected = len(inside_shapes(points, [{"x": xs, "y": ys}]))
    count = int(((points[:, 0] >= xs[0]) & (points[:, 0] <= xs[1]) & (points[:, 1] >= ys[0])
                 & (points[:, 1] <= ys[1])).sum())
    print(f"Chromium (software GL), {min(len(points), DRAWN_POINTS):,} of {len(points):,} points "
          f"drawn: drawn in {drawn:.1f} s, a 10-step pan answered in {panned:.2f} s, a box "
          f"answered in {chose:.1f} s ({marked:,} drawn markers in it) and selects {selected:,} "
          f"points (numpy's count in the box: {count:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--skip-projection", action="store_true")
    args = parser.parse_args()
    vectors, labels = features(args.points)
    if args.skip_projection:
        from sklearn.decomposition import PCA

        points = PCA(2, random_state=0).fit_transform(vectors[:, :64]).astype(np.float32)
    else:
        points = projection(vectors)
    browser(points, labels)


if __name__ == "__main__":
    main()
