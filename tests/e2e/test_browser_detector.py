"""The Detector page in Chromium: a scene's boxes, a second box picked in the list and
explained beside the first."""

from __future__ import annotations

import re

from tests.e2e.helpers import assert_no_error, captions, shot, wait_for_caption


def test_picking_a_second_box_explains_it_beside_the_first(server, page):
    page.goto(server + "/Detector?scene=3&det_thr=0.3")
    wait_for_caption(page, "Grad-CAM for box 1 ")
    box = page.locator("[data-testid=stMultiSelect]").filter(has_text="Boxes to explain")
    box.locator("input").click()
    options = page.get_by_role("option").filter(has_text=re.compile(r"^\d+ "))  # not "Select all"
    options.first.wait_for()
    picked = options.first.inner_text()
    options.first.click()
    page.keyboard.press("Escape")
    wait_for_caption(page, "Grad-CAM for box ", count=2)
    page.wait_for_timeout(1500)  # nothing more comes
    shown = [c for c in captions(page) if c.startswith("Grad-CAM for box ")]
    assert len(shown) == 2 and any(picked.split()[0] == c.split()[3] for c in shown), (picked, shown)
    page.wait_for_function("() => /det_boxes=[0-9,%C]+/.test(location.search)")
    assert_no_error(page)
    shot(page, "42-detector-two-boxes")


def test_a_click_on_a_box_explains_it(server, page):
    """A real click on a box of the chart (the box the test reads off the figure)."""
    page.goto(server + "/Detector?scene=3&det_thr=0.3")
    wait_for_caption(page, "Grad-CAM for box 1 ")
    chart = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    chart.locator(".main-svg").first.wait_for()
    page.wait_for_timeout(1000)
    # the centre of the last box's points, in page pixels
    x, y, caption = chart.evaluate("""gd => {
        const t = gd._fullData[1], last = Math.max(...t.customdata);
        const i = t.customdata.indexOf(last) + 4;  // its middle point
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(t.x[i]), box.top + ya._offset + ya.l2p(t.y[i]),
                t.text[i]];
    }""")
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)
    wait_for_caption(page, f"Grad-CAM for box {caption.split()[0]} ")
    page.wait_for_function("() => (location.search.match(/det_boxes=([^&]*)/) || ['', ''])[1]"
                           ".split('%2C').length == 10")
    assert_no_error(page)


def test_a_click_on_a_box_confusion_cell_lists_its_boxes_and_the_gallery_has_cards(server, page):
    """Errors of a detector's objects: a real click on the confusion's "bear detected as
    bear" cell lists its boxes; the Gallery of the same objects shows cards with maps."""
    page.goto(server + "/Errors?kind=objects&det_scenes=20")
    chart = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    chart.locator(".main-svg").first.wait_for()
    chart.scroll_into_view_if_needed()  # below the AP table
    page.wait_for_timeout(1000)
    x, y = chart.evaluate("""gd => {
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(1), box.top + ya._offset + ya.l2p(1)];
    }""")
    page.mouse.click(x, y)
    heading = page.get_by_role("heading", name=re.compile(r"True bear, detected as bear: \d+ box"))
    heading.wait_for()
    page.wait_for_function("() => /ocell=1(%2C|,)1/.test(location.search)")
    count = int(re.search(r": (\d+) box", heading.inner_text()).group(1))
    wait_for_caption(page, "scene ", count=min(count, 48))
    assert_no_error(page)
    shot(page, "43-detector-errors-cell")
    page.goto(server + "/Gallery?kind=objects&det_scenes=20&osort=-score")
    wait_for_caption(page, "missed · ")  # the lowest scores first: a missed animal's card
    assert_no_error(page)
    shot(page, "44-detector-object-patches")


def test_a_bad_sidebar_image_or_model_does_not_stop_the_detector(server, page):
    """The Detector picks its own model and, by default, its own image: a sidebar classifier
    waiting for a checkpoint and a sidebar upload of random bytes are said in the sidebar, the
    scene's boxes are still explained; the sidebar's image, once chosen, says its problem in
    the main area; the demo scene brings the maps back."""
    import random

    page.goto(server + "/Detector?scene=3")
    wait_for_caption(page, "Grad-CAM for box 1 ")
    side = page.locator("[data-testid=stSidebar]")
    side.get_by_text("Upload", exact=True).click()
    noise = random.Random(7).randbytes(4000)
    side.locator("[data-testid=stFileUploader]").filter(has_text="Your image").locator(
        "input[type=file]").set_input_files(
        files=[{"name": "noise.png", "mimeType": "image/png", "buffer": noise}])
    side.get_by_text("The image noise.png cannot be used").wait_for()
    side.get_by_text("My checkpoint").click()
    side.get_by_text("Upload a state dict").wait_for()
    wait_for_caption(page, "Grad-CAM for box 1 ")
    main = page.locator("[data-testid=stMain]")
    main.get_by_text("the sidebar's image").click()
    main.get_by_text("The image noise.png cannot be used").wait_for()
    main.get_by_text("demo scene", exact=True).click()
    wait_for_caption(page, "Grad-CAM for box 1 ")
    assert page.locator("[data-testid=stException]").count() == 0
    assert "Traceback" not in page.inner_text("body")
