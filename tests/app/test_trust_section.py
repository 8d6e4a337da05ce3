"""The trust section through the real pages: a review saved once, then updated; a sanity check
that stays; a pointing game that says when it cannot tell; a Compare table without holes."""

from __future__ import annotations

from tests.app.helpers import COMPARE, EXPLAIN, app, settle, texts
from ui import trust


def save(at, note: str) -> str:
    at.text_input(key="review_author").set_value("Ada")
    at.text_area(key="review_note").set_value(note)
    at.button(key="FormSubmitter:review_form-Save review").click().run()
    assert not at.exception
    return texts(at.success)[-1]


def test_saving_twice_stores_one_review_and_an_edit_updates_it():
    store = trust.review_store()
    at = app(EXPLAIN, sample="rocket")
    before = store.count()
    first = save(at, "points at the rocket")
    number = int(first.split("#")[1].rstrip("."))
    assert first == f"Saved as review #{number}."
    assert save(at, "points at the rocket") == f"Updated review #{number}."  # unchanged: no new row
    at.run()  # a rerun saves nothing either, and still says what was saved
    assert store.count() == before + 1
    assert texts(at.success)[-1] == f"Updated review #{number}."
    assert save(at, "points at the rocket and its tower") == f"Updated review #{number}."
    assert store.count() == before + 1 and store.get(number).note.endswith("and its tower")

    other = app(EXPLAIN, sample="rocket")  # another session saving the very same review
    at_other = save(other, "points at the rocket and its tower")
    assert at_other == f"Saved as review #{number}." and store.count() == before + 1
    other.selectbox(key="p_method").set_value("saliency").run()  # another view: the message
    # was not about it
    assert not any("review #" in t for t in texts(other.success))


def test_the_sanity_check_stays_after_a_rerun():
    at = app(EXPLAIN, sample="coffee", method="saliency")
    at.button(key="sanity").click().run()
    assert not at.exception
    shown = [c for image in at.get("image") for c in image.captions]
    stages = [c for c in shown if c.startswith("down to ")]
    assert stages and all("ρ = " in c or "vanished" in c for c in stages)
    at.slider(key="p_alpha").set_value(0.3).run()  # an unrelated change
    again = [c for image in at.get("image") for c in image.captions if c.startswith("down to ")]
    assert again == stages
    assert any("depends on the model's weights" in s for s in texts(at.success))


def test_the_pointing_game_says_its_chance_and_when_it_cannot_tell():
    at = app(EXPLAIN)  # the cat's face: 46% of the photo with the tolerance
    verdict = next(m for m in texts(at.markdown) if m.startswith("**Pointing game"))
    assert verdict.startswith("**Pointing game: hit.**") and "covers 46% of the image" in verdict
    at = app(EXPLAIN, sample="motorcycle")  # the motorcycle fills 68% of its photo
    verdict = next(m for m in texts(at.markdown) if m.startswith("**Pointing game"))
    assert verdict.startswith("**Pointing game: not informative**") and "68%" in verdict


def test_compare_has_no_empty_cell_and_names_its_occlusion_settings():
    at = settle(app(COMPARE, window=56, stride=28, baseline="black", sample="coffee"))
    assert not at.exception
    table = at.dataframe[0].value
    assert not table.isna().any().any(), table
    assert table.iloc[-1]["pointing game"] == "hits 37% of the time"
    shown = [c for image in at.get("image") for c in image.captions]
    assert any(c.endswith("window 56 px, stride 28 px, black baseline") for c in shown)
    assert at.slider(key="p_window").value == 56  # the options are on this page too


def test_a_busy_server_says_so_and_the_session_goes_on(monkeypatch):
    """A queue at its bound refuses the request with a message, never silently."""
    from ui import results

    at = app(EXPLAIN, sample="flower")
    scheduler = results.scheduler()
    monkeypatch.setattr(scheduler, "max_queue", 0)  # every new request is over the bound
    at.selectbox(key="p_method").set_value("saliency").run()
    assert not at.exception
    assert any("The server is busy" in w for w in texts(at.warning)), texts(at.warning)
    monkeypatch.setattr(scheduler, "max_queue", 200)
    at.run()
    assert any(c.startswith("Saliency for") for image in at.get("image") for c in image.captions)


def test_a_deferred_computation_that_fails_is_said_once_not_retried_forever():
    """The trust curves run behind the map; one that fails must not be started again at every
    check of the fragment, and asking for it says why."""
    import time as clock

    import pytest

    from explain import ExplainError
    from ui import trust

    calls = []

    def failing(job):
        calls.append(1)
        raise ExplainError("The map does not fit the image.")

    key = ("test-failing", clock.time_ns())
    deadline = clock.monotonic() + 30
    while True:
        try:
            if trust.soon(key, failing) is None:
                assert clock.monotonic() < deadline
                clock.sleep(0.05)
                continue
        except ExplainError as exc:
            assert "does not fit" in str(exc)
            break
    for _ in range(3):  # asked again, as the fragment does: the stored failure, not a new run
        with pytest.raises(ExplainError, match="does not fit"):
            trust.soon(key, failing)
    assert calls == [1]
