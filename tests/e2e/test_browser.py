"""Every page of the dashboard in a real browser (fixtures in conftest.py)."""

from __future__ import annotations

from tests.e2e.helpers import assert_no_error, captions, nav, selected, shot, wait_for_caption


def test_walk_every_page_and_run_gradcam(server, page):
    page.goto(server)
    wait_for_caption(page, "Cat (Chelsea)")
    assert_no_error(page)
    shot(page, "1-home")

    nav(page, "Explain").click()
    wait_for_caption(page, "Grad-CAM for “Egyptian cat”")
    assert_no_error(page)
    # the link is written when the run ends (after the faithfulness curves)
    page.wait_for_function("() => location.search.includes('method=gradcam')")
    assert "sample=chelsea" in page.url and "class=-1" in page.url
    image = page.locator("[data-testid=stImage] img").nth(1)
    assert image.evaluate("img => img.complete && img.naturalWidth") == 451  # the photo's width
    shot(page, "2-explain-gradcam")

    nav(page, "Compare").click()
    wait_for_caption(page, "Egyptian cat · p =", count=6)
    assert_no_error(page)
    shot(page, "3-compare")

    nav(page, "Activations").click()
    wait_for_caption(page, "#1: channel", count=1)
    assert_no_error(page)
    shot(page, "4-activations")

    nav(page, "Class visualization").click()
    page.get_by_role("button", name="Generate").wait_for()
    assert_no_error(page)
    shot(page, "5-class-visualization")


def test_class_visualization_generates(server, page):
    page.goto(f"{server}/Class_visualization?steps=16&viz_class=1")
    page.get_by_role("button", name="Generate").click()
    wait_for_caption(page, "“goldfish”")
    assert_no_error(page)
    assert "16 steps" in " ".join(captions(page))
    shot(page, "6-class-visualization-goldfish")


def test_shared_link_restores_the_view(server, page):
    page.goto(f"{server}/Explain?backbone=efficientnet_lite0&sample=coffee&method=saliency"
              "&class=968&alpha=0.8&cmap=inferno")
    wait_for_caption(page, "Saliency for “cup”")
    assert_no_error(page)
    assert selected(page, "Backbone") == "EfficientNet-Lite0 (offline)"
    assert selected(page, "Sample photo") == "Espresso"
    assert selected(page, "Method") == "Saliency"
    assert selected(page, "Explain class") == "968: cup"
    assert selected(page, "Colour map") == "inferno"
    shot(page, "7-shared-link")


def test_bad_link_and_not_applicable_show_messages(server, page):
    page.goto(f"{server}/Explain?backbone=vgg16&weights=untrained&method=cam&sample=../../x")
    page.get_by_text("CAM does not apply to VGG-16").wait_for()
    body = page.inner_text("body")
    assert "Untrained weights" in body and "sample = “../../x” is not valid" in body
    assert_no_error(page)
    shot(page, "8-not-applicable")


def test_reviews_page_and_exported_report_in_chromium(server, page, tmp_path):
    from reviews import VERDICTS, Review, ReviewStore
    from reviews.report import html_report

    store = ReviewStore()  # the server's database (same CNN_LENS_CACHE)
    notes = ["<script>document.title='pwned'</script>looks at the face",
             "Background & texture, <b>not</b> the cup", "plain note"]
    for i, note in enumerate(notes):
        store.add(Review(author=f"reviewer {i}", verdict=VERDICTS[i], note=note,
                         link="sample=coffee&method=gradcam", backbone="efficientnet_lite0",
                         weights="pretrained", image_hash="sample:coffee", method="gradcam",
                         target=967, target_name="espresso"))
    page.goto(f"{server}/Reviews")
    for note in notes:  # newest first: the page streams them in one by one
        page.get_by_text(note, exact=True).wait_for()  # markup from users is shown as text
    assert_no_error(page)
    shot(page, "12-reviews")

    report = tmp_path / "report.html"
    report.write_text(html_report(store.find()), encoding="utf-8")
    page.goto(report.as_uri())
    page.wait_for_selector(".review")
    assert page.title() == "CNN Lens reviews"  # the script in a note did not run
    text = page.inner_text("body")
    assert all(note in text for note in notes)
    assert page.locator(".review").count() == store.count()
    shot(page, "13-report")
