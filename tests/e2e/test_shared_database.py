"""Two app processes (two replicas behind a proxy) on one PostgreSQL database: a review saved
through one is listed by the other, in a real browser."""

from __future__ import annotations

from tests.e2e.conftest import serving
from tests.e2e.helpers import assert_no_error, wait_for_caption
from tests.pg import fresh_database


def test_a_review_saved_on_one_replica_is_listed_by_the_other(postgres, browser, tmp_path):
    url = fresh_database(postgres)
    shared = {"CNN_LENS_DB": url, "CNN_LENS_WARM_UMAP": "0"}
    with serving("replica-a", CNN_LENS_CACHE=str(tmp_path / "a"), **shared) as a, \
            serving("replica-b", CNN_LENS_CACHE=str(tmp_path / "b"), **shared) as b:
        first = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        first.set_default_timeout(120_000)
        first.goto(f"{a}/Explain?sample=rocket")
        wait_for_caption(first, "Grad-CAM for")
        # saved at once, while the trust curves are still computing: the page reruns when they
        # exist, and the message of the save stays through that rerun
        first.get_by_text("Save this view as a review").click()
        first.get_by_label("Your name").fill("Replica tester")
        first.get_by_label("Note").fill("saved through replica A")
        first.get_by_role("button", name="Save review").click()
        first.get_by_text("Saved as review #").wait_for()
        first.get_by_text("Pixels are removed (deletion)").wait_for()
        first.wait_for_timeout(1500)  # past the rerun the curves asked for
        assert "Saved as review #" in first.inner_text("body")
        assert_no_error(first)

        second = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        second.set_default_timeout(120_000)
        second.goto(f"{b}/Reviews")
        second.get_by_text("saved through replica A", exact=True).wait_for()
        assert "Replica tester" in second.inner_text("body")
        assert_no_error(second)
