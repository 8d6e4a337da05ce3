"""What the pictures look like in Chromium: the photo visible under a gradient map, every
image within a bounded box at its own aspect ratio, a slice review's picture unsqueezed, and
plotly's toolbar off the charts' labels."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from explain import RECORDS
from explain.data.samples import sample_image
from tests.e2e.helpers import assert_no_error, shot, upload_on_explain, wait_for_caption

MEAN_RGB = """img => { const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data; const m = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4) { m[0] += d[i]; m[1] += d[i + 1]; m[2] += d[i + 2]; }
    return m.map(v => v / (d.length / 4)); }"""


def test_a_gradient_map_over_the_photo_leaves_the_photo_visible(server, page):
    page.goto(server + "/Explain?method=guided_backprop&alpha=0.5&cmap=jet")
    wait_for_caption(page, "Guided backprop for “Egyptian cat”")
    picture = page.locator("[data-testid=stImage]").filter(
        has_text="Guided backprop for").locator("img")
    picture.evaluate("img => img.decode()")
    shown = np.array(picture.evaluate(MEAN_RGB))
    photo = np.asarray(sample_image("chelsea"), dtype=np.float64).mean((0, 1))
    # a uniform blend: a dark blue wash, mean RGB about (74, 57, 123)
    assert np.abs(shown - photo).max() < 15, (shown, photo)
    assert_no_error(page)
    shot(page, "30-guided-backprop-over-the-photo")

    page.goto(server + "/Explain?method=input_x_gradient&sign=all")
    wait_for_caption(page, "Gradient x Input for")
    assert_no_error(page)
    shot(page, "31-signed-map-both-colours")


def test_an_image_of_extreme_shape_fits_the_page(server, page):
    upload_on_explain(page, server, "strip.png", Image.new("RGB", (10, 3000), (200, 120, 40)))
    wait_for_caption(page, "strip.png · 10x3000")
    wait_for_caption(page, "Grad-CAM for")
    page.wait_for_timeout(1000)
    screen = page.viewport_size["height"]
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    assert height < 2 * screen + 1200, height  # it was 250,411 px
    for box in page.locator("[data-testid=stImage] img").all():
        size = box.evaluate("""img => { const r = img.getBoundingClientRect();
            return [r.width, r.height, img.naturalWidth, img.naturalHeight]; }""")
        assert size[1] <= 0.7 * screen + 1, size  # a bounded box...
    shot(page, "32-extreme-shape")
    fits = page.locator("[data-testid=stImage] img").first.evaluate(
        "img => getComputedStyle(img).objectFit")
    assert fits == "contain"  # ...in which the picture keeps its own aspect ratio
    assert_no_error(page)


def test_a_slice_reviews_picture_keeps_its_aspect_ratio(server, page, tmp_path):
    from reviews import VERDICTS, Review, ReviewStore
    from reviews.report import html_report

    sheet = io.BytesIO()  # a contact sheet as the Gallery makes one: 4 x 2 cards of 96 px
    Image.new("RGB", (384, 192), (90, 160, 90)).save(sheet, format="PNG")
    store = ReviewStore()
    review = store.add(Review(author="slice-aspect", verdict=VERDICTS[3], note="eight cards",
                              link="slice=all", backbone="efficientnet_lite0",
                              weights="pretrained", image_hash="slice:aspect", method="gradcam",
                              target=-1, target_name="a slice", page="Gallery",
                              thumbnail=sheet.getvalue(), scores={"deletion_auc": 0.25}))
    report = tmp_path / "report.html"
    titles = {m: r.title for m, r in RECORDS.items()}
    report.write_text(html_report([review], methods=titles), encoding="utf-8")
    page.goto(report.as_uri())
    size = page.locator(".review img").evaluate(
        "img => [img.getBoundingClientRect().width, img.getBoundingClientRect().height]")
    assert abs(size[0] / size[1] - 2.0) < 0.05, size
    assert "deletion AUC" in page.inner_text("body") and "Grad-CAM" in page.inner_text("body")

    page.goto(server + "/Reviews")
    page.get_by_text("eight cards", exact=True).wait_for()
    picture = page.locator("[data-testid=stImage] img").first
    picture.evaluate("img => img.decode()")
    size = picture.evaluate("img => [img.getBoundingClientRect().width, "
                            "img.getBoundingClientRect().height]")
    assert size[0] > 100 and abs(size[0] / size[1] - 2.0) < 0.1, size
    assert_no_error(page)
    shot(page, "33-slice-review")


def test_plotlys_toolbar_covers_no_label(server, page):
    page.goto(server + "/Explain")
    wait_for_caption(page, "Grad-CAM for")
    chart = page.locator("[data-testid=stPlotlyChart]").first
    chart.hover()
    page.wait_for_timeout(500)
    bar = chart.locator(".modebar").bounding_box()
    for text in chart.locator(".bartext, .ytick text").all():
        box = text.bounding_box()
        if box is None:
            continue
        overlap = (min(bar["x"] + bar["width"], box["x"] + box["width"]) - max(bar["x"], box["x"]) > 0
                   and min(bar["y"] + bar["height"], box["y"] + box["height"])
                   - max(bar["y"], box["y"]) > 0)
        assert not overlap, (bar, box, text.inner_text())
