"""The Units page in Chromium, two sessions at once on different layers: each keeps its own
layer, channel and link while the other computes."""

from __future__ import annotations

from tests.e2e.helpers import assert_no_error, shot, wait_for_caption

SMALL = "/Units?dataset=animal_mnist&per_class=5"


def _open(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
    page.set_default_timeout(180_000)
    page.goto(url)
    return page


def test_two_sessions_on_different_layers(server, browser):
    first = _open(browser, server + SMALL + "&unit_layer=_blocks.15")
    second = _open(browser, server + SMALL + "&unit_layer=_blocks.12")
    for page, layer, channels in ((first, "_blocks.15", 320), (second, "_blocks.12", 192)):
        page.get_by_text(f"Layer {layer}: {channels} channels").wait_for()
        page.locator("[class*=st-key-open_unit_] button").first.wait_for()
    # the first opens its top channel and draws its picture while the second labels its layer
    heading = first.locator("[class*=st-key-open_unit_]").first.get_attribute("class")
    channel = int(heading.split("st-key-open_unit_")[1].split()[0])
    first.locator(f".st-key-open_unit_{channel} button").click()
    first.get_by_text(f"Channel {channel} of _blocks.15").wait_for()
    first.get_by_role("button", name="Draw its picture").click()
    second.get_by_role("button", name="Label the channels (network dissection over the "
                                        "masks)").click()
    wait_for_caption(first, "Its picture: mean activation")
    wait_for_caption(first, "Guided backprop toward channel")
    second.get_by_text("Labelled by network dissection over 50 images").wait_for()
    assert second.get_by_text("shapes, IoU").count() + second.get_by_text("no label").count() \
        >= 12
    first.wait_for_function(f"() => /unit={channel}(&|$)/.test(location.search)")
    assert "unit_layer=_blocks.15" in first.url
    assert "unit_layer=_blocks.12" in second.url and "unit=" not in second.url.replace(
        "unit_layer", "")
    assert second.get_by_text("of _blocks.15").count() == 0  # nothing of the other session
    for page in (first, second):
        assert_no_error(page)
    shot(first, "40-units-channel")
    shot(second, "41-units-dissected")
    # a channel link typed by hand with an odd value: a message, the grid stays
    first.goto(server + SMALL + "&unit_layer=_blocks.15&unit=4000")
    first.get_by_text("there is no channel 4000").wait_for()
    first.locator("[class*=st-key-open_unit_] button").first.wait_for()
    assert_no_error(first)
    for page in (first, second):
        page.context.close()
