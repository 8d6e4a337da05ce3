"""Can a map be trusted: deletion/insertion curves against a random map, the pointing game,
the sanity check, and saved reviews."""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from explain import ExplainError, Explanation
from explain.data.samples import SAMPLES
from explain.evaluate.faithfulness import FILLS, Curves, faithfulness, random_map_curves
from explain.evaluate.pointing import chance_of_hit, pointing_game
from explain.evaluate.sanity import SanityCheck, randomization_check
from reviews import READONLY, Review, ReviewError, ReviewStore
from reviews.store import READONLY_ENV
from serving.scheduler import BELOW, Job
from ui.links import ensure_choice, ensure_value, get, key, link_query
from ui.results import compute, method_options, result_store, scheduler, session_id
from ui.text import problem
from ui.view import View


def curve_options() -> tuple[int, str]:
    ensure_value("curve_steps")
    ensure_choice("fill", list(FILLS))
    a, b = st.columns(2)
    a.slider("Deletion/insertion steps", 5, 50, key=key("curve_steps"))
    b.radio("Removed pixels become", list(FILLS), key=key("fill"), horizontal=True,
            format_func={"blur": "blurred image", "baseline": "mean colour"}.get)
    return get("curve_steps"), get("fill")


_digests: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _digest(result: Explanation) -> str:
    """The raw map's digest, once per result object (hashing it on every run of every session
    cost more than the rest of a cached page)."""
    digest = _digests.get(result)
    if digest is None:
        digest = _digests[result] = hashlib.sha1(result.raw.tobytes()).hexdigest()
    return digest


def _curves_key(view: View, result: Explanation, steps: int, fill: str) -> tuple:
    return ("curves", view.model_key, view.image_key, result.method, result.target,
            result.layer, _digest(result), steps, fill)


def _random_key(view: View, target: int, steps: int, fill: str) -> tuple:
    # no method in the key: one baseline per model, image and class, for every view and session
    return ("random-curves", view.model_key, view.image_key, target, steps, fill)


@dataclass(frozen=True)
class _Failed:
    message: str


def soon(key: tuple, fn: Callable[[Job], object]):
    """The result stored under ``key``, or None while the scheduler computes it, behind every
    page's main results (started here once; ``fn(job)`` reports its progress to ``job``, where
    it gives way to maps that are waiting). A computation that failed is stored as failed, so
    it is not started again on every check; asking for it raises its ``ExplainError``."""
    store = result_store()
    known = store.peek(key)
    if isinstance(known, _Failed):
        raise ExplainError(known.message)
    if known is not None:
        return known

    def work(job: Job) -> object:
        try:
            return store.get(key, lambda: fn(job))
        except ExplainError as exc:
            failed = _Failed(str(exc))
            store.get(key, lambda: failed)
            raise

    job = scheduler().submit(work, key=key, owner=session_id(), priority=BELOW)
    return job.result() if job.finished else None


def curves_soon(view: View, result: Explanation, steps: int, fill: str) -> Curves | None:
    return soon(_curves_key(view, result, steps, fill),
                lambda job: faithfulness(view.backbone, view.image, result, steps, fill,
                                         progress=job.report))


def random_curves_soon(view: View, target: int, steps: int, fill: str) -> Curves | None:
    def compute(job: Job) -> Curves:
        inputs = view.backbone.preprocess(view.image)
        return random_map_curves(view.backbone.model, inputs, target, steps, fill, count=4,
                                 progress=job.report)

    return soon(_random_key(view, target, steps, fill), compute)


def later(section: Callable[[], None], ready: Callable[[], bool], every: float = 1.0) -> None:
    """Draw ``section`` (which shows what it has, or that it is waiting). When its results are
    not ``ready``, it is drawn in a fragment that checks again every ``every`` seconds and,
    once they are, reruns the page, which then draws it at once: the page's run ends as soon
    as its main results are on screen, and no fragment keeps polling after. A computation
    that failed is said in its place, as a message, and is not waited for."""
    try:
        if ready():
            # in a container, as the fragment below is: the page keeps its shape, so what
            # follows (an open expander, a form being filled) is the same element after the
            # rerun and stays as the user left it
            with st.container():
                section()
            return
    except ExplainError as exc:
        with st.container():
            problem(st, str(exc), "warning")
        return

    @st.fragment(run_every=every)
    def poll() -> None:
        try:
            done = ready()
        except ExplainError:
            done = True  # the page's run says what failed
        if done:
            st.rerun()
        section()

    poll()


def object_box(view: View) -> tuple[int, int, int, int] | None:
    """The main object's box: the sample's own, or one the user enters for an upload."""
    if view.image_key.startswith("sample:"):
        return SAMPLES[view.image_key.removeprefix("sample:")].box
    with st.expander("Object box for the pointing game (pixels of your image)"):
        w, h = view.image.width, view.image.height
        cols = st.columns(4)
        # a box belongs to the image it was entered for: each image has its own fields
        image = hashlib.sha1(view.image_key.encode()).hexdigest()[:12]
        values = [cols[i].number_input(label, 0, limit, value, key=f"box_{label}_{image}")
                  for i, (label, limit, value) in enumerate(
                      (("left", w, 0), ("top", h, 0), ("right", w, w), ("bottom", h, h)))]
        if values[0] >= values[2] or values[1] >= values[3]:
            st.info("The box needs left < right and top < bottom.")
            return None
        return tuple(int(v) for v in values) if values != [0, 0, w, h] else None


@dataclass(frozen=True)
class Pointing:
    """The pointing game for one map, with the hit rate of chance for its box."""

    hit: bool
    chance: float  # the share of the image the box (with tolerance) covers
    box: tuple[int, int, int, int]

    @property
    def informative(self) -> bool:
        return self.chance <= 0.5

    @property
    def score(self) -> str:
        return ("hit" if self.hit else "miss") + ("" if self.informative else " (not informative)")

    @property
    def chance_text(self) -> str:
        text = (f"the object's box {self.box} (15 px tolerance) covers {self.chance:.0%} of "
                f"the image, so a map that points at random hits {self.chance:.0%} of the time")
        return text + ("" if self.informative else ": more than half, so a hit says little")

    @property
    def text(self) -> str:
        where = self.chance_text
        if not self.informative:
            return (f"**Pointing game: not informative** (the map's maximum "
                    f"{'falls' if self.hit else 'does not fall'} inside the box): {where}.")
        return (f"**Pointing game: {'hit' if self.hit else 'miss'}.** The map's maximum "
                f"{'falls' if self.hit else 'does not fall'} inside the object's box; {where}.")


def pointing_summary(view: View, result: Explanation, box) -> Pointing | None:
    if box is None:
        return None
    return Pointing(pointing_game(result.heatmap, box),
                    chance_of_hit(box, (view.image.height, view.image.width)), tuple(box))


def _sanity_key(view: View, result: Explanation) -> tuple:
    return ("sanity", view.model_key, view.image_key, result.method, result.target,
            method_options(view, result.method))


def sanity_requested(view: View, result: Explanation) -> bool:
    """Whether this session asked for the check of this view (its expander stays open)."""
    return _sanity_key(view, result) in st.session_state.get("_sanity_asked", ())


def sanity_check(view: View, result: Explanation) -> SanityCheck | None:
    """The cascading randomization check of this view's map: kept (for every session) once it
    was asked for, so later reruns of the page still show it; a button until then."""
    run_key = _sanity_key(view, result)
    check = result_store().peek(run_key)
    if check is None:
        if not st.button("Run the sanity check", key="sanity"):
            return None
        st.session_state.setdefault("_sanity_asked", set()).add(run_key)
        options = dict(method_options(view, result.method))
        # asked for with a click, and waited for: main work, not behind every session's curves
        with st.spinner("Randomizing the model block by block..."):
            check = compute(run_key, lambda job: randomization_check(
                view.backbone, view.image, result.method, result.target, **options))
    return check


def review_form(form_key: str) -> tuple[str, str, str] | None:
    """The review form: (name, verdict, note) once it is submitted, else None."""
    from reviews import VERDICTS

    with st.form(form_key, clear_on_submit=False):
        author = st.text_input("Your name", key="review_author")
        verdict = st.selectbox("Verdict", VERDICTS, key="review_verdict")
        note = st.text_area("Note", key="review_note")
        saved = st.form_submit_button("Save review")
    return (author, verdict, note) if saved else None


def review_section(form_key: str, build: Callable[[str, str, str], Review]) -> None:
    """The review form, the save of what ``build`` makes of it, and what became of the last
    save. That message stays on later runs of the page while its link is the one saved: the
    trust curves rerun the page once they exist, and a save in that moment used to show its
    message for one run only, so a user could not tell whether it was saved."""
    if review_store().readonly:
        st.info(READONLY)
        return
    entered = review_form(form_key)
    said = st.session_state.setdefault("_review_said", {})
    if entered is not None:
        review = build(*entered)
        try:
            stored, how = save_review(review)
        except ReviewError as exc:
            said.pop(form_key, None)
            problem(st, str(exc), "warning")
            return
        said[form_key] = (review.link, f"{how} review #{stored.id}.")
    shown = said.get(form_key)
    if shown is not None and shown[0] == link_query():
        st.success(shown[1])
        st.page_link("pages/8_Reviews.py", label="See all reviews")


def review_store() -> ReviewStore:
    """The server's review store (read-only where ``CNN_LENS_READONLY=1``)."""
    return _review_store(os.environ.get(READONLY_ENV, "") == "1")


@st.cache_resource(show_spinner=False)
def _review_store(readonly: bool) -> ReviewStore:
    return ReviewStore(readonly=readonly)


def save_review(review: Review) -> tuple[Review, str]:
    """Save ``review`` once: the first save of a view in this session adds it (the store returns
    the stored one for an identical review, so a double click adds nothing); a later save of the
    same view with an edited form updates that review. Returns it and what happened."""
    saved = st.session_state.setdefault("_saved_reviews", {})
    view = (review.page, review.link, review.image_hash, review.backbone, review.weights)
    store = review_store()
    earlier = saved.get(view)
    if earlier is not None:
        try:
            store.get(earlier)
        except ReviewError:  # deleted meanwhile: save it anew
            saved.pop(view)
        else:
            return store.update(earlier, author=review.author, verdict=review.verdict,
                                note=review.note, scores=review.scores,
                                thumbnail=review.thumbnail), "Updated"
    stored = store.add(review)
    saved[view] = stored.id
    return stored, "Saved as"
