"""Class visualization: the image the model "thinks of" for a class, grown by gradient ascent."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Class visualization")

import streamlit as st

from explain import Cancelled, ExplainError
from explain.render.pictures import png_bytes
from serving.scheduler import Busy, Stopped
from ui import frame, links, results
from ui.text import plain, problem

with frame.page("Class visualization", need_image=False) as view:
    categories = view.backbone.categories
    st.subheader("Class visualization")
    st.caption("Starting from noise (or a blank image), the picture is changed step by step to raise "
               "the class score, seen each step under a random shift, scale and rotation so that only "
               "robust evidence survives, in a colour-decorrelated Fourier basis. What appears is what "
               "the model looks for.")

    classes = list(range(len(categories)))
    links.ensure_choice("viz_class", classes, default=categories.index("goldfish")
                         if "goldfish" in categories else 0)
    for name in ("steps", "seed", "jitter"):
        links.ensure_value(name)
    links.ensure_choice("start", ["noise", "blank"])
    left, right = st.columns([2, 3])
    with left:
        target = st.selectbox("Class (type to search)", classes, key=links.key("viz_class"),
                              format_func=lambda i: f"{i}: {categories[i]}")  # plain text
        st.slider("Steps", 8, 512, step=8, key=links.key("steps"))
        st.slider("Regularisation strength (random shift, px)", 0, 32, key=links.key("jitter"))
        a, b = st.columns(2)
        a.number_input("Seed", 0, 2**31 - 1, step=1, key=links.key("seed"))
        b.radio("Start from", ["noise", "blank"], key=links.key("start"), horizontal=True)
        generate = st.button("Generate", type="primary")

    options = (("steps", links.get("steps")), ("seed", links.get("seed")),
               ("start", links.get("start")), ("jitter", float(links.get("jitter"))))
    run_key = (view.model_key, target, options)
    pictures = st.session_state.setdefault("viz_results", {})
    # the latest picture of a run, kept while it runs: Stop reruns the page (which ends the
    # run), and the picture so far stays on screen, marked as stopped, and downloadable
    partial = st.session_state.setdefault("viz_partial", {})
    steps = links.get("steps")
    stem = f"{view.backbone.name}-class-{target}"

    with right:
        picture = st.empty()
        if generate:
            st.session_state.pop("stopped", None)
            partial.pop(run_key, None)
            progress = results.ProgressWithStop(st.container(), run_key, "Optimising")

            def show(job) -> None:  # the worker's steps and its latest picture, as they come
                progress(job)
                shot = job.shared.get("preview")
                if shot is not None and partial.get(run_key, (None,))[0] != shot[0]:
                    partial[run_key] = shot
                    picture.image(shot[1], caption=f"step {shot[0]} of {steps}", width=360)

            try:
                pictures[run_key] = results.cached_visualization(view, target, options, show,
                                                                 where=st.empty())
            except (Cancelled, Stopped):
                st.session_state["stopped"] = run_key
            except (ExplainError, Busy) as exc:
                problem(st, str(exc), "warning")
            finally:
                progress.done()
        result = pictures.get(run_key) or results.result_store().peek(
            results.visualization_key(view, target, options))
        last = results.stopped_job_shared().get("preview")  # the step it stopped at
        if last is not None and st.session_state.get("stopped") == run_key:
            partial[run_key] = last
        if result is not None:
            partial.pop(run_key, None)
            picture.image(result.image, width=360,
                          caption=f"“{plain(categories[result.target])}” · the model's probability "
                                  f"for this picture: {result.probability:.1%} · {result.steps} "
                                  f"steps in {result.seconds:.1f} s")
            st.line_chart({"class score (logit)": result.scores}, height=160, x_label="step",
                          y_label="class score (logit)")
            st.download_button("Download PNG", png_bytes(result.image), f"{stem}.png",
                               "image/png", on_click="ignore")
        elif run_key in partial and st.session_state.get("stopped") == run_key:
            step, image = partial[run_key]
            picture.image(image, width=360, caption=f"“{plain(categories[target])}”: stopped at "
                                                    f"step {step} of {steps}")
            st.info(f"Stopped at step {step} of {steps}. Press Generate to start again.")
            st.download_button("Download PNG", png_bytes(image), f"{stem}-step-{step}.png",
                               "image/png", on_click="ignore")
        elif not generate:
            st.info("Choose a class and press Generate.")
