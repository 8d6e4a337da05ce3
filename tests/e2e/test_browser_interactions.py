"""What a user clicks and what a crafted link or file does, in a real browser: no foreign link
or image in the page, a confusion-matrix cell click, a layout without overlaps, Stop that keeps
the picture, exported links that work, a sidebar that shows names whole."""

from __future__ import annotations

import io
import re
from urllib.parse import quote, urlsplit

from PIL import Image

from tests.e2e.helpers import (
    assert_no_error,
    first_chart,
    nav,
    shot,
    upload_on_explain,
    wait_for_caption,
)
from tests.shapes import in_polygon

HOSTILE_LINK = ("/Explain?method=" + quote("[Session expired - click here](https://example.com/login)")
                + "&sample=" + quote("![x](https://example.com/p.png)") + "&cmap=__class__"
                + "&layer=" + quote("<img src=https://example.com/q.png>") + "&class="
                + quote("javascript:alert(1)") + "&" + quote("<a href=//example.com>x</a>") + "=1")


def foreign(page, server: str) -> list[str]:
    """Links and images in the page that point anywhere but this server (or inline data)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(server))
    refs = page.evaluate("""() => [
        ...[...document.querySelectorAll('a[href]')].map(a => a.href),
        ...[...document.querySelectorAll('img[src]')].map(i => i.src),
        ...[...document.querySelectorAll('image')].map(i => i.href.baseVal || '')]""")
    return [r for r in refs if r and not r.startswith((origin, "data:", "blob:"))]


def test_a_crafted_link_puts_no_markup_into_the_page(server, page):
    page.goto(server + HOSTILE_LINK)
    wait_for_caption(page, "Grad-CAM for “Egyptian cat”")
    note = page.locator("[data-testid=stAlertContentInfo]").filter(has_text="Ignored from the link")
    note.wait_for()
    text = note.inner_text().replace("\u200b", "")  # the zero-width space that stops autolinks
    assert "[Session expired - click here](https://example.com/login)" in text
    assert "![x](https://example.com/p.png)" in text and "__class__" in text
    assert "<img src=https://example.com/q.png>" in text and "javascript:alert(1)" in text
    assert note.locator("a, img, strong, em").count() == 0
    page.wait_for_timeout(500)
    assert foreign(page, server) == []
    assert_no_error(page)
    shot(page, "20-crafted-link")


def test_an_uploaded_file_name_is_plain_text(server, page):
    name = "![x](https%3A//example.com/p.png)<a href='https://example.com'>x</a>.png"
    upload_on_explain(page, server, name, Image.new("RGB", (300, 200), (30, 120, 200)))
    wait_for_caption(page, "![x](https%3A//example.com/p.png)")
    page.wait_for_timeout(500)
    assert foreign(page, server) == []
    assert_no_error(page)
    # the screen shows JPEG; the overlay download is a PNG of the uploaded image, made on click
    with page.expect_download() as download:
        page.get_by_role("button", name="Overlay PNG").click()
    overlay = Image.open(download.value.path())
    assert overlay.format == "PNG" and overlay.size == (300, 200)


def test_clicking_a_confusion_matrix_cell_lists_its_images(server, page):
    page.goto(server + "/Errors?per_class=10&dataset=animal_mnist")
    chart = first_chart(page, "-nearest-neighbour probe")  # k = 8: 10 per class, 5 folds
    row, col = 4, 4  # true dog, predicted dog: a cell that holds images
    x, y = chart.evaluate("""(gd, [row, col]) => {
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(col), box.top + ya._offset + ya.l2p(row)];
    }""", [row, col])
    page.mouse.click(x, y)
    heading = page.get_by_role("heading", name="True dog, predicted dog")
    heading.wait_for()
    page.wait_for_function("() => /cell=4(%2C|,)4/.test(location.search)")  # when the run ends
    images = page.locator("[data-testid=stImageCaption]")
    images.first.wait_for()
    # each image opens in Explain (its link button comes after it: wait for the run to finish)
    page.wait_for_function("""() => {
        const shown = document.querySelectorAll('[data-testid=stImageCaption]').length;
        const links = [...document.querySelectorAll('[data-testid=stMain] a')]
            .filter(a => a.innerText.trim() === 'Explain').length;
        return shown > 0 && links >= shown; }""")
    assert_no_error(page)
    shot(page, "21-errors-cell-clicked")
    # the matrix is in the dataset's classes (a probe on the ImageNet model's features): its
    # Explain links open the head fitted to them, on the cell's predicted class
    href = page.locator("[data-testid=stMain] a", has_text="Explain").first.get_attribute("href")
    assert "weights=fitted" in href and "class=4" in href, href
    page.goto(href if href.startswith("http") else f"{server}/{href.lstrip('/')}")
    wait_for_caption(page, "Grad-CAM for “dog”")
    page.get_by_text("Explained with a head fitted to the classes of Animal-MNIST").wait_for()
    assert_no_error(page)
    shot(page, "21b-errors-cell-explained")


def test_the_clicked_point_pictures_do_not_overlap(server, page):
    page.goto(server + "/Embedding_map?per_class=10&proj=pca&point=3")
    wait_for_caption(page, "Grad-CAM toward")  # its class's mean feature (not ImageNet's)
    wait_for_caption(page, "the image")
    page.wait_for_timeout(500)
    boxes = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stImage]')]
        .filter(e => e.innerText.includes('Grad-CAM toward') || e.innerText.includes('·')
                     || e.innerText.includes('the image'))
        .map(e => { const r = e.getBoundingClientRect();
                    return [r.left, r.top, r.right, r.bottom, e.innerText]; })""")
    assert len(boxes) >= 3, boxes
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = min(a[2], b[2]) - max(a[0], b[0]) > 1 and min(a[3], b[3]) - max(a[1], b[1]) > 1
            assert not overlap, (a, b)
    shot(page, "22-embedding-point")


def test_stop_keeps_the_class_picture(server, page):
    page.goto(server + "/Class_visualization?steps=512&viz_class=1")
    page.get_by_role("button", name="Generate").click()
    wait_for_caption(page, "step 32 of 512")
    page.wait_for_timeout(700)  # between two previews
    bar = page.locator("[data-testid=stProgress]").inner_text()
    page.get_by_role("button", name="Stop").click()
    seen = int(bar.split("Optimising: ")[1].split("/")[0])
    wait_for_caption(page, "“goldfish”: stopped at step")
    caption = next(c for c in page.locator("[data-testid=stImageCaption]").all_inner_texts()
                   if "stopped at step" in c)
    step = int(caption.split("stopped at step ")[1].split()[0])
    assert seen <= step < 512, (bar, caption)  # the step it stopped at, not the last preview
    image = page.locator("[data-testid=stImage] img").first
    # the picture of the step it stopped at replaces the last preview: wait for it to load
    assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") == 224
    with page.expect_download() as download:
        page.get_by_role("button", name="Download PNG").click()
    assert download.value.suggested_filename == f"efficientnet_lite0-class-1-step-{step}.png"
    assert "Choose a class and press Generate" not in page.inner_text("body")
    assert_no_error(page)
    shot(page, "23-class-visualization-stopped")


def test_a_slow_method_does_not_leave_the_previous_map_on_screen(server, page):
    """Grad-CAM's map, then Score-CAM chosen in the same session: while Score-CAM runs, its
    progress and Stop are there, and neither Grad-CAM's map nor its trust section is (they
    would read as Score-CAM's answer); stopped, it says so, and the map is not back."""
    page.goto(server + "/Explain?method=gradcam&sample=chelsea")
    wait_for_caption(page, "Grad-CAM for “Egyptian cat”")
    assert page.get_by_text("Can this map be trusted?").count() == 1
    page.locator("[data-testid=stSelectbox]").filter(has_text="Method").click()
    page.get_by_role("option", name="Score-CAM").click()
    page.get_by_role("button", name="Stop").wait_for(timeout=60_000)
    page.wait_for_timeout(300)
    captions = page.locator("[data-testid=stImageCaption]").all_inner_texts()
    assert not [c for c in captions if "Grad-CAM for" in c], captions
    assert page.get_by_text("Can this map be trusted?").count() == 0
    assert page.locator("[data-testid=stImage]").count() == 1  # the photo above, alone
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped.").first.wait_for(timeout=60_000)
    assert not [c for c in page.locator("[data-testid=stImageCaption]").all_inner_texts()
                if "Grad-CAM for" in c]
    assert_no_error(page)


def test_the_exported_report_links_back_to_this_server(server, page, tmp_path):
    from reviews import VERDICTS, Review, ReviewStore

    ReviewStore().add(Review(author="report-link", verdict=VERDICTS[0], note="link check",
                             link="sample=coffee&method=gradcam", backbone="efficientnet_lite0",
                             weights="pretrained", image_hash="sample:coffee", method="gradcam",
                             target=967, target_name="espresso"))
    page.goto(server + "/Reviews")
    page.get_by_text("link check", exact=True).wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download these reviews as HTML").click()
    report = tmp_path / "report.html"
    download.value.save_as(report)
    html = report.read_text(encoding="utf-8")
    assert f"href='{server}/Explain?sample=coffee&amp;method=gradcam'" in html
    page.goto(report.as_uri())
    link = page.locator(".review", has_text="link check").get_by_role("link", name="open this view")
    link.click()  # from the downloaded file, back into the app
    wait_for_caption(page, "Grad-CAM for “espresso”")
    assert_no_error(page)


def test_the_sidebar_shows_the_backbone_and_photo_names_whole(server, page):
    page.goto(server)
    wait_for_caption(page, "Cat (Chelsea)")
    cut = page.evaluate("""() => [...document.querySelectorAll(
            '[data-testid=stSidebar] [data-testid=stSelectbox] input')]
        .filter(i => i.scrollWidth > i.clientWidth + 1).map(i => i.value)""")
    assert cut == []


def test_choices_survive_a_page_switch_made_while_a_fragment_polls(server, page):
    """The browser reports none of a page's widgets when it switches pages, and after a
    fragment's run Streamlit holds their values only under the widgets: a switch made while
    the trust curves are being waited for must still keep every choice."""
    page.goto(server + "/Explain?sample=chelsea&method=saliency&alpha=0.3&cmap=viridis"
              "&curve_steps=50&fill=blur")
    page.get_by_text("Computing the deletion and insertion curves").wait_for(timeout=120_000)
    page.wait_for_timeout(2500)  # the fragment has checked again (every second)
    assert page.get_by_text("Computing the deletion and insertion curves").count()
    nav(page, "Compare").click()
    page.wait_for_function("() => location.pathname.endsWith('/Compare')")
    page.locator("[data-testid=stSlider]").filter(has_text="Heatmap opacity").wait_for()
    page.wait_for_function("() => /alpha=/.test(location.search)")
    shown = page.locator("[data-testid=stSlider]").filter(has_text="Heatmap opacity") \
        .locator("[data-testid=stSliderThumbValue]").inner_text()
    query = dict(p.split("=", 1) for p in urlsplit(page.url).query.split("&"))
    assert float(shown) == 0.3 and query["alpha"] == "0.3" and query["cmap"] == "viridis"
    assert query["curve_steps"] == "50" and query["fill"] == "blur"
    assert_no_error(page)


def test_a_box_drawn_on_the_map_becomes_the_gallerys_slice(server, page):
    page.goto(server + "/Embedding_map?per_class=10&proj=pca&dataset=animal_mnist&method=cam")
    chart = first_chart(page, "draw a box or a lasso")
    chart.hover()
    page.locator(".modebar-btn[data-val=select]").first.click()  # the toolbar's box select
    # a box over the middle of the map, and the points plotly holds inside it
    box, inside = chart.evaluate("""gd => {
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
        const [x0, x1] = [xa.range[0] + 0.4 * (xa.range[1] - xa.range[0]),
                          xa.range[0] + 0.6 * (xa.range[1] - xa.range[0])];
        const [y0, y1] = [ya.range[0] + 0.4 * (ya.range[1] - ya.range[0]),
                          ya.range[0] + 0.6 * (ya.range[1] - ya.range[0])];
        const px = v => r.left + xa._offset + xa.l2p(v), py = v => r.top + ya._offset + ya.l2p(v);
        const rows = [];
        for (const t of gd._fullData) {
            if (!t.customdata) continue;
            t.x.forEach((x, i) => { const y = t.y[i];
                if (x >= x0 && x <= x1 && y >= Math.min(y0, y1) && y <= Math.max(y0, y1))
                    rows.push(Number(t.customdata[i])); });
        }
        return [[px(x0), py(y0), px(x1), py(y1)], rows.sort((a, b) => a - b)];
    }""")
    assert 0 < len(inside) < 100, inside
    page.mouse.move(box[0], box[1])
    page.mouse.down()
    page.mouse.move((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, steps=5)
    page.mouse.move(box[2], box[3], steps=5)
    page.mouse.up()
    page.get_by_text(f"{len(inside)} images selected").wait_for()
    page.wait_for_function("() => /sel=/.test(location.search)")
    shot(page, "25-embedding-box-selection")
    page.get_by_role("link", name="Explain the selection in the Gallery").click()
    page.get_by_text(f"a selection of {len(inside)} images").first.wait_for()
    page.get_by_role("button", name=f"Explain these {len(inside)} images").click()
    page.get_by_text(f"of {len(inside)}.").first.wait_for(timeout=120_000)  # "Cards 1-n of n."
    page.wait_for_function(f"""() => [...document.querySelectorAll(
        '[data-testid=stCaptionContainer]')].filter(e => e.innerText.includes(' · deletion '))
        .length >= {min(24, len(inside))}""")  # the caption comes before the cards
    names = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
        .map(e => e.innerText).filter(t => t.includes(' · deletion '))
        .map(t => t.split(' · ')[0])""")
    expected = {f"#{i}" for i in _originals(inside)}
    assert len(names) == min(24, len(inside)) and set(names) <= expected  # 24 cards a page
    if len(inside) <= 24:
        assert set(names) == expected
    assert_no_error(page)
    shot(page, "26-gallery-of-the-selection")

    # the same slice on the Two models page, through the Gallery's link
    page.get_by_role("link", name="Compare this slice on two models").click()
    page.get_by_role("button", name=f"Compare the two models on {len(inside)} images (a "
                                    f"selection of {len(inside)} images)").click()
    page.get_by_text(f"of {len(inside)} images of a selection").wait_for(timeout=120_000)
    page.wait_for_function(f"""() => [...document.querySelectorAll(
        '[data-testid=stCaptionContainer]')].filter(e => e.innerText.includes(' · ρ = '))
        .length >= {min(24, len(inside))}""")  # the summary comes before the cards
    compared = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
        .map(e => e.innerText).filter(t => t.includes(' · ρ = '))
        .map(t => t.split(' · ')[0])""")
    assert len(compared) == min(24, len(inside)) and set(compared) <= expected
    assert_no_error(page)
    shot(page, "27-two-models-on-the-selection")


def _originals(rows: list[int]) -> list[int]:
    """The full dataset's indices of rows of the 10-per-class subset (cards name images so)."""
    from explain.data.datasets import bundled

    subset = bundled("animal_mnist").subset(10)
    return [subset.original(r) for r in rows]


def test_thumbnails_are_drawn_on_the_map(server, page):
    page.goto(server + "/Embedding_map?per_class=10&proj=pca&dataset=animal_mnist&thumbs=on")
    chart = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    chart.locator(".main-svg").first.wait_for()
    page.wait_for_function("""() => {
        const gd = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
        return gd && gd.layout && gd.layout.images && gd.layout.images.length > 0; }""")
    drawn, asked, loaded = chart.evaluate("""async gd => {
        const shown = [...gd.querySelectorAll('.layer-above image')];
        const ok = await Promise.all(shown.map(i => new Promise(done => {
            const probe = new Image(); probe.onload = () => done(probe.naturalWidth > 0);
            probe.onerror = () => done(false); probe.src = i.getAttribute('href'); })));
        return [shown.length, gd.layout.images.length, ok.filter(Boolean).length]; }""")
    assert drawn == asked == loaded and 10 < drawn <= 144
    assert_no_error(page)
    shot(page, "28-thumbnails-on-the-map")


def test_a_box_or_a_lasso_on_a_sampled_map_selects_from_all_its_points(browser, lite, tmp_path):
    """A map above CNN_LENS_MAP_POINTS (50 here, 20,000 by default) draws a sample of its
    points; a box or a lasso drawn on it selects every point inside, drawn or not (the map's
    points are made here again from the same features)."""
    import numpy as np

    from explain.analysis.features import extract_features
    from explain.analysis.projections import project
    from explain.data.datasets import bundled
    from tests.e2e.conftest import serving

    dataset = bundled("animal_mnist").subset(10)
    points = project(extract_features(lite, dataset, directory=tmp_path / "here").vectors, "pca")
    with serving("sampled-map", CNN_LENS_MAP_POINTS="50", CNN_LENS_WARM_UMAP="0",
                 CNN_LENS_CACHE=str(tmp_path / "cache")) as url:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(120_000)
        page.goto(url + "/Embedding_map?per_class=10&proj=pca&dataset=animal_mnist")
        chart = first_chart(page, "The map draws 50 of its 100 points")
        drawn = chart.evaluate("""gd => gd._fullData.filter(t => t.customdata)
            .reduce((n, t) => n + t.x.length, 0)""")
        assert drawn == 50
        chart.hover()
        page.locator(".modebar-btn[data-val=select]").first.click()
        (left, top), (middle, _), (right, bottom) = _corners(chart)  # top: at 20% of y's range
        page.mouse.move(left, top)
        page.mouse.down()
        page.mouse.move(right, bottom, steps=8)
        page.mouse.up()
        page.wait_for_function("() => /sel=/.test(location.search)")
        box = chart.evaluate("gd => gd.layout.selections[0]")  # the box the server was sent
        x0, x1 = sorted((box["x0"], box["x1"]))
        y0, y1 = sorted((box["y0"], box["y1"]))
        marked = chart.evaluate(f"""gd => gd._fullData.filter(t => t.customdata).reduce((n, t) =>
            n + t.x.filter((x, i) => x >= {x0} && x <= {x1} && t.y[i] >= {y0}
                && t.y[i] <= {y1}).length, 0)""")
        inside = np.flatnonzero((points[:, 0] >= x0) & (points[:, 0] <= x1)
                                & (points[:, 1] >= y0) & (points[:, 1] <= y1)).tolist()
        assert _selection(page) == inside
        assert len(inside) > marked  # points that were not drawn are in the selection too

        # a lasso: a triangle, drawn with the mouse, from outside the box
        page.locator(".modebar-btn[data-val=lasso]").first.click()
        (left, top), (middle, _), (right, bottom) = _corners(chart, (0.1, 0.5, 0.9))
        page.mouse.move(left, bottom)
        page.mouse.down()
        for x, y in ((right, bottom), (middle, top), (left, bottom)):
            page.mouse.move(x, y, steps=6)
        page.mouse.up()
        page.wait_for_function(f"() => !location.search.includes('sel={_query(inside)}')")
        path = chart.evaluate("gd => gd.layout.selections[0].path")  # "M x,y L x,y ... Z"
        vertices = [tuple(float(v) for v in p.split(",")) for p in
                    path.strip("MZ").split("L")]
        xs, ys = [v[0] for v in vertices], [v[1] for v in vertices]
        lassoed = [i for i, (x, y) in enumerate(points) if in_polygon(x, y, xs, ys)]
        assert len(lassoed) > 0 and _selection(page) == lassoed
        assert_no_error(page)


def _corners(chart, at=(0.2, 0.5, 0.8)) -> list[list[float]]:
    """Page pixels of fractions ``at`` of the chart's x and y ranges (taken after the page has
    scrolled to the chart)."""
    return chart.evaluate("""(gd, fractions) => {
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const r = gd.getBoundingClientRect();
        const at = (f, a) => a.range[0] + f * (a.range[1] - a.range[0]);
        return fractions.map(f => [r.left + xa._offset + xa.l2p(at(f, xa)),
                                   r.top + ya._offset + ya.l2p(at(f, ya))]);
    }""", list(at))


def _query(rows: list[int]) -> str:
    return "%2C".join(str(r) for r in rows)


def _selection(page) -> list[int]:
    from urllib.parse import parse_qs

    found = parse_qs(urlsplit(page.url).query).get("sel", [""])[0]
    return [int(v) for v in found.split(",") if v]


def test_hovering_a_point_shows_its_thumbnail(server, page):
    import base64

    import numpy as np

    from explain.data.datasets import bundled

    page.goto(server + "/Embedding_map?per_class=10&proj=pca&dataset=animal_mnist")
    chart = first_chart(page, "draw a box or a lasso")
    chart.hover()  # scrolls the chart into view
    x, y = chart.evaluate("""gd => { const t = gd._fullData.find(t => t.customdata);
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
        return [r.left + xa._offset + xa.l2p(t.x[3]), r.top + ya._offset + ya.l2p(t.y[3])]; }""")
    page.mouse.move(x - 30, y - 30)
    page.mouse.move(x, y, steps=5)
    preview = page.locator(".preview")
    page.wait_for_function("""() => { const host = [...document.querySelectorAll('*')]
        .map(e => e.shadowRoot).filter(Boolean).map(s => s.querySelector('.preview'))
        .find(Boolean); return host && host.style.display === 'block'; }""")
    hovered = chart.evaluate("gd => Number(gd._hoverdata[0].customdata)")
    assert int(preview.get_attribute("data-row")) == hovered
    dataset = bundled("animal_mnist").subset(10)
    label = dataset.classes[dataset.labels[hovered]]
    assert preview.locator(".caption").inner_text() == f"{dataset.name(hovered)} · {label}"
    source = preview.locator("img").get_attribute("src")
    picture = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("L")
    shown = np.asarray(picture.resize((64, 64)), float)
    # the hovered image, of all the dataset's images, is the one it looks most like
    distances = [np.abs(shown - np.asarray(dataset.image(i).convert("L").resize((64, 64)),
                                           float)).mean() for i in range(len(dataset))]
    assert int(np.argmin(distances)) == hovered
    shot(page, "30-hover-thumbnail")
    page.mouse.move(5, 5)  # off the point: the thumbnail goes
    page.wait_for_function("""() => { const host = [...document.querySelectorAll('*')]
        .map(e => e.shadowRoot).filter(Boolean).map(s => s.querySelector('.preview'))
        .find(Boolean); return host && host.style.display === 'none'; }""")
    assert_no_error(page)


def test_compare_shows_its_cards_as_they_come_with_the_time_left_and_stop(server, page):
    """Compare on a photo no test explains there (18 maps): the count of maps done and the time
    left above the cards while they come; Stop leaves the rest uncomputed (said, on each card
    and above), and "Compute them" finishes them."""
    page.goto(server + "/Compare?sample=astronaut&method=gradcam")
    page.get_by_text(re.compile(r"\d+ of \d+ maps done, about \d+ s left")).first.wait_for()
    page.get_by_role("button", name="Stop the maps still to come").click()
    page.get_by_text(re.compile(r"Stopped: \d+ maps? not computed")).wait_for()
    assert page.get_by_text("Stopped before this map.").count() >= 1
    assert_no_error(page)
    shot(page, "23-compare-stopped")
    page.get_by_role("button", name="Compute them").click()
    page.get_by_text("Which map is most faithful to the model, for this image?").wait_for(
        timeout=240_000)
    page.wait_for_function("() => !document.body.innerText.includes('Stopped before this map.')")
    assert_no_error(page)


def test_dataset_pages(server, page):
    # the last browser test: its UMAP map waits for the server's UMAP compile (about 40 s
    # after it starts), which the tests before it leave time for
    page.goto(f"{server}/Embedding_map?per_class=10&proj=umap&color=prediction")
    page.locator("[data-testid=stMetric]").wait_for()
    page.locator("[data-testid=stPlotlyChart] .main-svg").first.wait_for()
    assert_no_error(page)
    assert page.locator("[data-testid=stPlotlyChart]").count() == 2
    assert "UMAP of 100 images" in page.inner_text("body")
    shot(page, "9-embedding-map")

    nav(page, "Nearest neighbours").click()
    wait_for_caption(page, "Query: Cat (Chelsea)")
    wait_for_caption(page, "rank 8 · ")
    assert_no_error(page)
    page.wait_for_function("() => /per_class=10/.test(location.search)")  # when the run ends
    shot(page, "10-neighbours")

    nav(page, "Errors").click()
    page.get_by_text("classified by a 8-nearest-neighbour probe").wait_for()  # 10 per class
    page.locator("[data-testid=stPlotlyChart] .main-svg").first.wait_for()
    assert_no_error(page)
    shot(page, "11-errors")
