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
