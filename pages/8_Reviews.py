"""Reviews: what the team concluded, filtered, reopened, edited, deleted and exported."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Reviews")

import logging

import streamlit as st

from explain import RECORDS
from models import backbone_names
from reviews import READONLY, VERDICTS, ReviewError, box_text, score_lines
from reviews.report import html_report
from ui import frame, links, trust

with frame.page("Reviews", need_image=False, need_model=False):
    st.subheader("Reviews")
    st.caption("Saved from the Explain page (a view), the Detector (a box's map) and the Gallery "
               "(a slice). There are no "
               "accounts: anyone on the team can edit or delete any review, and restore a "
               "deleted one.")
    try:
        store = trust.review_store()
        authors = store.authors()
    except Exception:  # a database that is down or misconfigured: say so, keep the app
        logging.getLogger("cnn_lens").exception("the review database is not available")
        st.warning("The review database is not available right now (the details are in the "
                   "server's log). The other pages keep working.")
        links.stop()
    if store.readonly:
        st.info(READONLY)
    undo = st.session_state.get("_deleted_review")
    if undo is not None and not store.readonly:
        left, right = st.columns([4, 1])
        left.success(f"Review #{undo} was deleted.")
        if right.button("Undo", key="undo_delete"):
            store.restore(undo)
            st.session_state.pop("_deleted_review", None)
            st.rerun()
    a, b, c, d, e = st.columns([3, 3, 3, 3, 2])
    backbone = a.selectbox("Model", ["", *backbone_names(None)], key="rv_backbone",
                           format_func=lambda n: n or "all models")
    verdict = b.selectbox("Verdict", ["", *VERDICTS], key="rv_verdict",
                          format_func=lambda v: v or "all verdicts")
    author = c.selectbox("Author", ["", *authors], key="rv_author",
                         format_func=lambda v: v or "everyone")
    text = d.text_input("Text", key="rv_text", placeholder="search notes and classes")
    deleted = e.radio("Show", [False, True], key="rv_deleted",
                      format_func=lambda d: "deleted" if d else "reviews") is True
    found = store.find(backbone or None, verdict or None, author or None, text or None,
                       deleted=deleted)
    if not deleted:  # the export holds no deleted review
        st.download_button("Download these reviews as HTML",
                           html_report(found, base_url=links.base_url(),
                                       methods={m: r.title for m, r in RECORDS.items()}).encode(),
                           "cnn-lens-reviews.html", "text/html", on_click="ignore",
                           disabled=not found)
    st.caption(f"{len(found)} {'deleted ' if deleted else ''}review"
               f"{'s' if len(found) != 1 else ''}"
               + (" (restore one to list it again)." if deleted else "."))

    for review in found:
        with st.container(border=True):
            left, right = st.columns([1, 4])
            if review.thumbnail:
                left.image(review.thumbnail, width="stretch", output_format="PNG")
            with right:
                st.markdown(f"**{review.verdict}** · #{review.id}")
                # names and notes are shown as plain text: no markup from users is rendered
                st.text(f"{review.author}, {review.created:%Y-%m-%d %H:%M} UTC · "
                        f"{review.backbone} ({review.weights}) · "
                        f"{(RECORDS[review.method].title if review.method in RECORDS else review.method)} "
                        + (f"over {review.target_name}" if review.target < 0  # a slice
                           else f"for {review.target_name} ({review.target})")
                        + (f", {box_text(review.box)}" if review.box is not None else ""))
                if review.note:
                    st.text(review.note)
                if review.scores:
                    st.text(" · ".join(f"{k}: {v}" for k, v in score_lines(review.scores)))
                x, y, z = st.columns([2, 1, 1])
                x.link_button("Open this view", f"{review.page.replace(' ', '_')}?{review.link}")
                if store.readonly:
                    continue
                if deleted:
                    st.caption(f"Deleted {review.deleted:%Y-%m-%d %H:%M} UTC.")
                    if z.button("Restore", key=f"restore_{review.id}"):
                        store.restore(review.id)
                        st.rerun()
                    continue
                editing = y.toggle("Edit", key=f"edit_{review.id}")
                if z.button("Delete", key=f"delete_{review.id}"):
                    st.session_state["confirm_delete"] = review.id
                if st.session_state.get("confirm_delete") == review.id:
                    st.warning("Delete this review for everyone? It can be restored from the "
                               "deleted reviews.")
                    if st.button("Yes, delete it", key=f"really_{review.id}"):
                        store.delete(review.id)
                        st.session_state.pop("confirm_delete", None)
                        st.session_state["_deleted_review"] = review.id
                        st.rerun()
                if editing:
                    with st.form(f"form_{review.id}"):
                        new_author = st.text_input("Author", review.author)
                        new_verdict = st.selectbox("Verdict", VERDICTS,
                                                   VERDICTS.index(review.verdict))
                        new_note = st.text_area("Note", review.note)
                        if st.form_submit_button("Save changes"):
                            try:
                                store.update(review.id, author=new_author, verdict=new_verdict,
                                             note=new_note)
                            except ReviewError as exc:
                                st.warning(str(exc))
                            else:
                                st.rerun()
