"""Two models: the same image, method and class on the sidebar's model and a second one (another
backbone, or a checkpoint of the same architecture: before and after fine-tuning), side by
side, with their difference and how much they agree."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Two models")

import numpy as np
import streamlit as st

from explain import RECORDS, ExplainError, explain
from explain.evaluate.agreement import agreement, disagreements
from explain.render.pictures import colorize, overlay
from models import CHECKPOINT, backbone_names, get_spec
from serving.scheduler import Busy, Stopped
from ui import frame, gallery, layout, limits, links, results, widgets
from ui.text import plain, problem

with frame.page("Two models") as view:
    st.subheader("Two models")
    st.caption("The sidebar's model (A) and a second one (B) on the same image, method and "
               "class.")
    a_col, b_col = st.columns(2)
    with b_col:
        names = backbone_names()
        links.ensure_choice("backbone_b", names)
        st.selectbox("Model B", names, key=links.key("backbone_b"),
                     format_func=lambda n: get_spec(n).title)
        links.ensure_choice("weights_b", list(frame.WEIGHTS))
        weights = st.radio("Weights of B", list(frame.WEIGHTS), key=links.key("weights_b"),
                           horizontal=True, format_func=frame.WEIGHTS.get,
                           help="Fitted: B's pretrained backbone with a head fitted on the "
                                "dataset's classes: A against it is before and after transfer.")
        checkpoint = class_names = None
        if weights == CHECKPOINT:
            upload = widgets.uploaded("Checkpoint of B (state dict)", "checkpoint_b_file",
                                      ["pt", "pth", "bin"], limits.CHECKPOINT_BYTES)
            names_file = widgets.uploaded("Class names of B (optional)", "class_names_b_file",
                                          ["txt", "json"], limits.CLASS_NAMES_BYTES)
            if upload is None:
                st.info("Upload model B's checkpoint to compare it with A.")
                links.stop()
            checkpoint, class_names = upload[1], names_file[1] if names_file else None
    other, failed = frame.load_model(links.get("backbone_b"), weights, checkpoint, class_names,
                                     where=st.container())
    if other is None:
        problem(st, failed[1], failed[0])
        links.stop()
    with a_col:
        st.markdown(f"**Model A**: {plain(view.backbone.spec.title)} ({view.backbone.weights})")
        st.caption("Change it in the sidebar.")

    methods = [m for m, r in RECORDS.items() if r.compare]  # Score-CAM: on Explain
    links.ensure_choice("method", methods)
    method = st.selectbox("Method", methods, key=links.key("method"), format_func=lambda m: RECORDS[m].title)
    chosen, top_a = widgets.target_picker(view)  # the class, as on Explain (a link's too)
    same_classes = view.backbone.categories == other.categories
    explained = chosen if chosen is not None else top_a[0].index
    if same_classes:
        targets = {"A": explained, "B": explained}
        st.caption(f"Both explain “{plain(view.backbone.categories[explained])}”"
                   + (" (A's top class)." if chosen is None else "."))
    else:
        targets = {"A": explained, "B": None}
        st.caption(f"The two models have different classes: A explains "
                   f"“{plain(view.backbone.categories[explained])}”, B its own top class.")

    options = dict(results.method_options(view, method))  # as on Explain (the link's)
    maps, tops = {}, {}
    for slot, who, backbone in ((a_col, "A", view.backbone), (b_col, "B", other)):
        with slot:
            top = tops[who] = results.predictions(view, backbone=backbone)
            st.text("\n".join(f"{p.name[:40]}: {p.probability:.1%}" for p in top))
            target = targets[who] if targets[who] is not None else top[0].index
            try:
                result = results.compute(
                    ("two-models", backbone.identity, view.image_key, method, target,
                     tuple(options.items())),
                    lambda job, b=backbone, t=target: explain(b, view.image, method, t, **options),
                    slot=f"two-{who}")
            except (ExplainError, Busy) as exc:
                problem(st, str(exc), "warning")
                continue
            maps[who] = result
            st.image(overlay(view.image, result.heatmap, 0.5, "jet"), width="stretch",
                     caption=f"{who}: {RECORDS[method].title} for "
                             f"“{plain(backbone.categories[result.target])}”"
                             f" (p = {result.probability:.1%})"
                             + (f" · layer {result.layer}" if result.layer else ""))
    if len(maps) == 2:
        st.markdown("#### Where they differ")
        diff = maps["A"].heatmap - maps["B"].heatmap
        left, right = st.columns([1, 1])
        left.image(colorize((diff + 1) / 2, "coolwarm"), width="stretch",
                   caption="A minus B: red where A looks more, blue where B does")
        agree = agreement(maps["A"].heatmap, maps["B"].heatmap)
        right.metric("Rank correlation of the maps (Spearman)", f"{agree.spearman:.2f}")
        right.metric("Overlap of their top 20% regions (IoU)", f"{agree.top_overlap:.2f}")
        if same_classes and tops["A"][0].index != tops["B"][0].index:
            right.warning("The two models predict different classes for this image.")
        right.caption(f"Mean absolute difference {float(np.abs(diff).mean()):.3f} (maps in "
                      "[0, 1]).")

    st.divider()
    st.markdown("#### Where they disagree on a dataset")
    if not same_classes:
        st.info("The two models have different classes: their predictions cannot be compared "
                "image by image.")
        links.stop()
    st.caption("Pick a slice as on the Gallery page (it is made with model A's features and "
               "predictions); up to its first 200 images are compared.")
    dataset, _, _, _, spec, indices = gallery.picked_slice(view)
    chosen = [int(i) for i in indices[:200]]
    count = len(chosen)
    described = plain(spec.describe(list(dataset.classes)))
    run_key = ("disagreements", view.backbone.identity, other.identity, dataset.digest,
               tuple(chosen))
    found = results.result_store().peek(run_key)
    if found is None and st.button(f"Compare the two models on {count} image"
                                   f"{'s' if count != 1 else ''} ({described})", key="disagree"):
        slot = st.container()
        progress = results.ProgressWithStop(slot, run_key, f"Comparing on {count} images")
        try:
            found = results.compute(run_key, lambda job: disagreements(
                view.backbone, other, dataset, chosen, progress=job.report),
                slot="disagree", where=slot.empty(), progress=progress)
        except (ExplainError, Busy, Stopped) as exc:
            problem(st, str(exc) or "Stopped.", "info")
        finally:
            progress.done()
    if found is not None:
        flips = sum(d.flip for d in found)
        st.caption(f"{flips} of {len(found)} images of {described} change their prediction "
                   "from A to B; below, "
                   "the flips first (most confident first), then the largest map shifts "
                   "(lowest rank correlation of the Grad-CAM maps).")
        categories = view.backbone.categories
        for cell, d in zip(layout.grid(len(found[:24]), 4), found[:24], strict=True):
            with cell:
                image = dataset.image(d.index)
                both = np.concatenate([overlay(image, d.heat_a, 0.5, "jet"),
                                       overlay(image, d.heat_b, 0.5, "jet")], axis=1)
                st.image(both, width="stretch",
                         caption=f"{plain(dataset.name(d.index), 24)} · A: "
                                 f"{plain(categories[d.class_a], 24)} ({d.p_a:.0%}) · B: "
                                 f"{plain(categories[d.class_b], 24)} ({d.p_b:.0%}) · "
                                 f"ρ = {d.agreement.spearman:.2f}")
