"""Compare: every method for one image and one class, side by side, each with its run time."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Compare")

import time

import streamlit as st

from explain import RECORDS
from ui import frame, layout, results, trust, widgets
from ui.text import plain

with frame.page("Compare") as view:
    target, top = widgets.target_picker(view)
    st.divider()
    alpha, cmap = widgets.display_options()
    shown_methods = [m for m, r in RECORDS.items() if r.compare]
    tuned = [m for m in shown_methods if any(o.kind != "layer" for o in RECORDS[m].options)]
    with st.expander("The methods' options (shared with the Explain page)"):
        groups: dict[tuple, list[str]] = {}  # methods with the same options: drawn once
        for method in tuned:
            keys = tuple(o.key for o in RECORDS[method].options if o.kind != "layer")
            groups.setdefault(keys, []).append(method)
        drawn = {o.key for m in tuned for o in RECORDS[m].options if o.kind == "layer"}
        for keys, methods in groups.items():
            new = set(keys) - drawn
            if not new:  # all drawn with another group's
                continue
            st.caption(", ".join(RECORDS[m].title for m in tuned  # every method they set
                                 if new & {o.key for o in RECORDS[m].options}))
            drawn.update(widgets.method_options(view, methods[0], skip=drawn))
    left_out = [r.title for m, r in RECORDS.items() if not r.compare]
    if left_out:
        st.caption(f"{', '.join(left_out)}: on the Explain page (a forward pass per channel or "
                   "per mask).")
    made = {}
    # every card as soon as its map is done, the rest's time estimated above them, and Stop
    this = ("compare", view.model_key, view.image_key, target)
    store = results.result_store()
    to_come = [m for m in shown_methods if store.peek(results.explanation_key(
        view, m, target, results.method_options(view, m))) is None]
    stopped = st.session_state.get("compare_stopped") == this
    status = st.empty()
    if to_come and not stopped:
        st.button("Stop the maps still to come", key="compare_stop",
                  on_click=st.session_state.__setitem__, args=("compare_stopped", this))
    elif to_come:
        status.info(f"Stopped: {len(to_come)} map{'s' if len(to_come) != 1 else ''} not "
                    "computed.")
        st.button("Compute them", key="compare_resume", on_click=st.session_state.pop,
                  args=("compare_stopped", None))
    began, computed = time.perf_counter(), 0
    for method, cell_column in zip(shown_methods, layout.grid(len(shown_methods), 3),
                                   strict=True):
        with cell_column:
            st.subheader(RECORDS[method].title)
            if stopped and method in to_come:
                st.caption("Stopped before this map.")
                continue
            if method in to_come and not stopped:
                done = to_come.index(method)
                left = "" if computed == 0 else (
                    f", about {(time.perf_counter() - began) / computed * (len(to_come) - done):.0f}"
                    " s left")
                status.progress(done / len(to_come), text=f"{len(shown_methods) - len(to_come) + done}"
                                f" of {len(shown_methods)} maps done{left}")
            # the cell's answer in one place, emptied while a new map is made (its progress above)
            working, answer = st.container(), st.empty()
            result = results.run_explanation(view, method, target, working, answer=answer)
            computed += method in to_come
            cell = answer.container() if result is not None else st.container()
            if result is not None:
                made[method] = result
                # as on Explain: the photo shows where the map says nothing
                shown = widgets.overlay_of(view, result, alpha, cmap)
                said = [o.say(v) for o, (_, v) in zip(RECORDS[method].options,
                                                      results.method_options(view, method),
                                                      strict=True)
                        if o.kind != "layer" and (o.kind != "bool" or v)]  # a switch: when on
                settings = f" · {', '.join(said)}" if said else ""
                # inline, so the picture arrives with its caption and buttons (fetched from
                # the media endpoint, it came seconds after them under load)
                cell.image(widgets.inline_jpeg(shown), width="stretch",
                           caption=f"{plain(view.backbone.categories[result.target])} · "
                                   f"p = {result.probability:.1%} · {result.seconds:.2f} s{settings}")
                widgets.downloads(result, widgets.overlay_png(view, result, alpha, cmap),
                                  f"{view.backbone.name}-{method}-{result.target}",
                                  slot=cell)

    if to_come and not stopped:
        status.empty()  # all done
    if made:
        st.divider()
        st.markdown("#### Which map is most faithful to the model, for this image?")
        steps, fill = trust.curve_options()
        box = trust.object_box(view)
        target_class = next(iter(made.values())).target
        pointing = None
        for result in made.values():
            pointing = trust.pointing_summary(view, result, box)

        def scored() -> tuple[dict, object]:  # the curves that exist so far, and the baseline
            return ({m: trust.curves_soon(view, r, steps, fill) for m, r in made.items()},
                    trust.random_curves_soon(view, target_class, steps, fill))

        def ranking() -> None:  # filled progressively: each method's row once its curves exist
            curves, reference = scored()
            rows = []
            for method, result in made.items():
                row = {"method": RECORDS[method].title,
                       "deletion AUC (lower is better)": None if curves[method] is None
                       else curves[method].deletion_auc,
                       "insertion AUC (higher is better)": None if curves[method] is None
                       else curves[method].insertion_auc}
                if box is not None:
                    row["pointing game"] = trust.pointing_summary(view, result, box).score
                rows.append(row)
            done = [r for r in rows if r["deletion AUC (lower is better)"] is not None]
            done.sort(key=lambda r: r["deletion AUC (lower is better)"] -
                      r["insertion AUC (higher is better)"])
            waiting = [r["method"] for r in rows if r["deletion AUC (lower is better)"] is None]
            rows = done  # a method is listed once its curves exist (no empty cells meanwhile)
            if reference is not None:
                random_row = {"method": "random map (reference)",
                              "deletion AUC (lower is better)": reference.deletion_auc,
                              "insertion AUC (higher is better)": reference.insertion_auc}
                if pointing is not None:
                    random_row["pointing game"] = f"hits {pointing.chance:.0%} of the time"
                rows.append(random_row)
            if len(done) < len(made) or reference is None:
                st.caption(f"Computing the curves: {len(done)} of {len(made)} methods scored"
                           + (f" (to come: {', '.join(waiting)})" if waiting else "")
                           + ("" if reference is not None else "; the random map's to come")
                           + "...")
            st.dataframe(rows, hide_index=True, key="ranking",
                         column_config={k: st.column_config.NumberColumn(format="%.3f") for k in (
                             "deletion AUC (lower is better)",
                             "insertion AUC (higher is better)")})

        def all_scored() -> bool:
            curves, reference = scored()
            return reference is not None and all(c is not None for c in curves.values())

        trust.later(ranking, ready=all_scored)
        st.caption("Ranked by insertion minus deletion area. Deletion removes the pixels the map "
                   "calls most important first: a faithful map makes the class probability drop "
                   "at once (small area). Insertion reveals them first on a blurred image: the "
                   "probability should rise at once (large area). A method no better than the "
                   "random map says little about this model on this image.")
        if pointing is not None:
            st.caption(f"Pointing game: {pointing.chance_text}.")
