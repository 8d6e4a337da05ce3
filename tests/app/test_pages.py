"""Every page renders, runs its methods on the real offline model and shows no exception."""

import io
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

from explain import METHODS, RECORDS
from explain.data.datasets import bundled
from tests.app.helpers import (
    ACTIVATIONS,
    CLASSVIZ,
    COMPARE,
    EXPLAIN,
    app,
    assert_clean,
    captions,
    png,
    settle,
    shown,
)

COMPARED = sum(record.compare for record in RECORDS.values())  # not those of a pass per channel

def test_home_page_predicts_and_links_every_view():
    at = app(None)
    assert_clean(at)
    assert captions(at) == ["Cat (Chelsea)"]
    assert len(at.get("plotly_chart")) == 1


def test_explain_page_default_is_gradcam_on_the_cat():
    at = settle(app())
    assert_clean(at)
    assert any(c.startswith("Grad-CAM for “Egyptian cat”") for c in captions(at))
    assert at.selectbox(key="p_class").value == -1  # follows the top prediction
    assert len(at.get("plotly_chart")) == 4  # top-5 bars, raw map, deletion, insertion
    assert [b.label for b in at.get("download_button")] == ["Overlay PNG", "Raw map .npy"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_produces_a_figure(method):
    # AblationCAM takes a forward pass per channel: at a layer of 320, not the head's 1,280
    fewer = {"layer": "_blocks.15._project_conv"} if method == "ablationcam" else {}
    at = app(window=112, stride=112, masks=32, sample="coffee", **fewer)
    at.selectbox(key="p_method").set_value(method).run()
    assert_clean(at)
    title = RECORDS[method].title
    assert any(c.startswith(f"{title} for “espresso”") for c in captions(at)), captions(at)
    assert at.query_params["method"] in (method, [method])


def test_options_and_retargeting():
    at = app()
    at.selectbox(key="p_layer").set_value("_blocks.12").run()
    at.selectbox(key="p_class").set_value(281).run()  # tabby
    assert_clean(at)
    assert any(c.startswith("Grad-CAM for “tabby”") for c in captions(at))
    params = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert params["layer"] == "_blocks.12" and params["class"] == "281"


def test_cam_on_vgg_says_why_and_untrained_is_flagged():
    at = app(backbone="vgg16", weights="untrained", method="cam")
    assert_clean(at)
    warnings = " ".join(shown(w.value) for w in at.warning)
    assert "Untrained weights" in warnings and "explanations mean nothing" in warnings
    assert "CAM does not apply to VGG-16" in warnings
    at.selectbox(key="p_method").set_value("gradcam").run()  # the rest keeps working
    assert_clean(at)
    assert any(c.startswith("Grad-CAM for") for c in captions(at))


def test_compare_page_shows_every_method_with_its_time():
    at = app(COMPARE, window=112, stride=112)
    assert_clean(at)
    cells = [c for c in captions(at) if "Egyptian cat · p = 77" in c]
    assert len(cells) == COMPARED  # all but Score-CAM and AblationCAM (Explain only)
    assert all(re.search(r" \d+\.\d\d s( · |$)", c) for c in cells), cells  # each with its time
    # occlusion says where its window, stride and baseline come from
    assert any(c.endswith("window 112 px, stride 112 px, grey baseline") for c in cells), cells
    labels = [b.label for b in at.get("download_button")]
    assert labels.count("Overlay PNG") == labels.count("Raw map .npy") == COMPARED


def test_class_visualization_page_generates():
    at = app(CLASSVIZ, steps=8, viz_class=967)
    assert_clean(at)
    assert at.selectbox(key="p_viz_class").value == 967
    at.button[0].click().run()
    assert_clean(at)
    pictures = [c for c in captions(at) if c.startswith("“espresso”")]
    assert pictures and "8 steps" in pictures[0]
    assert [b.label for b in at.get("download_button")] == ["Download PNG"]


def test_activations_page_grid_and_enlarge():
    at = app(ACTIVATIONS, topk=8)
    assert_clean(at)
    grid = [c for c in captions(at) if c.startswith("#")]
    assert len(grid) == 8 and grid[0].startswith("#1: channel 287")
    at.button(key="enlarge_287").click().run()
    assert_clean(at)
    assert any(shown(m.value) == "#### Channel 287" for m in at.markdown)
    assert [b.label for b in at.get("download_button")] == ["Overlay PNG", "Raw map .npy"]
    at.selectbox(key="p_act_layer").set_value("_blocks.3").run()
    assert_clean(at)
    assert len([c for c in captions(at) if c.startswith("#")]) == 8


def test_link_state_is_validated():
    at = app(None, backbone="resnet18", weights="untrained", sample="rocket", method="saliency",
             evil="<script>", layer="../../etc")
    assert_clean(at)
    notes = " ".join(shown(i.value) for i in at.info)  # shown on the page the link opens
    assert "unknown parameter “evil”" in notes and "layer = “../../etc” is not valid" in notes
    at.switch_page(EXPLAIN).run()
    assert_clean(at)
    assert at.selectbox(key="p_backbone").value == "resnet18"
    assert at.radio(key="weights_choice").value == "untrained"
    assert at.selectbox(key="p_sample").value == "rocket"
    assert at.selectbox(key="p_method").value == "saliency"
    assert any(c.startswith("Saliency for") for c in captions(at))
    at = app(backbone="not-a-model", sample="/etc/passwd", **{"class": "x"})
    assert_clean(at)
    assert at.selectbox(key="p_backbone").value == "efficientnet_lite0"
    assert at.selectbox(key="p_sample").value == "chelsea"
    assert at.selectbox(key="p_class").value == -1


def test_state_survives_page_switches():
    at = app(sample="coffee")
    at.radio(key="weights_choice").set_value("untrained").run()
    at.selectbox(key="p_method").set_value("occlusion").run()
    at.slider(key="p_window").set_value(112).run()
    for page in (COMPARE, ACTIVATIONS, EXPLAIN):
        at.switch_page(page).run()
        assert_clean(at)
    assert at.radio(key="weights_choice").value == "untrained"
    assert at.selectbox(key="p_method").value == "occlusion"
    assert at.slider(key="p_window").value == 112
    assert at.selectbox(key="p_sample").value == "coffee"


def test_uploads_good_and_bad():
    at = app()
    at.radio(key="source").set_value("upload").run()
    assert_clean(at)
    uploader = at.file_uploader(key="image_file")
    uploader.upload("notes.png", b"this is not an image", "image/png").run()
    assert not at.exception
    assert any("The image notes.png cannot be used" in shown(e.value) for e in at.error)
    from explain.data.samples import sample_image

    uploader = at.file_uploader(key="image_file")
    uploader.upload("cat.png", png(sample_image("chelsea").rotate(90, expand=True)), "image/png")
    at.run()
    assert_clean(at)
    assert any(c.startswith("Grad-CAM for “Egyptian cat”") for c in captions(at))
    assert "sample" not in at.query_params  # an upload cannot travel in a link
    at.switch_page(COMPARE).run()  # the upload is kept across pages
    assert_clean(at)
    assert any(c.startswith("Using cat.png") for c in (shown(x.value) for x in at.caption))
    assert any("Egyptian cat · p =" in c for c in captions(at))


def test_own_checkpoint_with_class_names():
    from models import get_spec

    torch.manual_seed(0)
    state = get_spec("resnet18").build(3).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    at = app(backbone="resnet18")
    at.radio(key="weights_choice").set_value("checkpoint").run()
    assert_clean(at)
    assert any("Upload a state dict" in shown(i.value) for i in at.info)
    at.file_uploader(key="checkpoint_file").upload("model.pt", buffer.getvalue())
    at.file_uploader(key="class_names_file").upload("names.txt", b"ant\nbee\ncat\n", "text/plain")
    at.run()
    assert_clean(at)
    assert any(" for “" in c for c in captions(at))
    assert any("3 classes" in shown(c.value) for c in at.caption)
    bad = at.file_uploader(key="checkpoint_file")
    bad.upload("whole.pt", _pickled_model()).run()
    assert not at.exception
    assert any("pickled Python code" in shown(e.value) for e in at.error)


def _pickled_model() -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2), buffer)
    return buffer.getvalue()


def test_overlay_is_the_image_size():
    from explain.render.pictures import overlay

    picture = overlay(Image.new("RGB", (30, 20)), np.ones((20, 30), np.float32))
    assert picture.shape == (20, 30, 3)


EMBEDDING, NEIGHBOURS, ERRORS = "pages/5_Embedding_map.py", "pages/6_Neighbours.py", "pages/7_Errors.py"


def test_embedding_map_colours_selects_and_compares():
    at = app(EMBEDDING, per_class=8, proj="pca")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2  # the map and the accuracy bars
    accuracy = float(at.metric[0].value.rstrip("%")) / 100
    assert 0.5 < accuracy <= 1.0
    at.radio(key="p_color").set_value("correct").run()
    assert_clean(at)
    at.radio(key="p_proj").set_value("tsne").run()
    assert_clean(at)
    assert any("t-SNE of 80 images" in shown(c.value) for c in at.caption)
    at.query_params.update({"point": "3"})
    at.session_state["p_point"] = 3
    at.run()
    assert_clean(at)
    seen = captions(at)
    # Animal-MNIST's classes are not ImageNet's: the point is explained toward its own class
    truth = at.session_state["p_point"] // 8  # 8 per class, in class order
    classes = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
    assert "the image" in seen
    assert any(c.startswith(f"Grad-CAM toward “{classes[truth]}” (its class's mean feature")
               for c in seen), seen
    assert len([c for c in seen if " · 0." in c]) == 8  # eight neighbours with distances


def test_thumbnails_on_the_map_are_the_regions_images():
    import base64
    import json

    from explain.analysis.projections import representatives
    from explain.data.datasets import bundled

    at = app(EMBEDDING, per_class=8, proj="pca", thumbs="on")
    assert_clean(at)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    images = figure["layout"]["images"]
    def array(value) -> np.ndarray:  # plotly sends numpy arrays as typed arrays
        if isinstance(value, dict):
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return np.asarray(value)

    traces = [t for t in figure["data"] if "customdata" in t]
    points = np.concatenate([np.stack([array(t["x"]), array(t["y"])], 1) for t in traces])
    rows = np.concatenate([array(t["customdata"]) for t in traces]).astype(int)
    ordered = np.zeros_like(points)
    ordered[rows] = points  # the map, back in dataset order
    expected, side = representatives(ordered)
    assert [int(i["name"].split()[-1]) for i in images] == expected.tolist()
    dataset = bundled("animal_mnist").subset(8)
    originals = [np.asarray(dataset.image(int(r)).convert("L").resize((48, 48)), float)
                 for r in expected]
    for n, (drawn, row) in enumerate(zip(images, expected, strict=True)):
        assert (drawn["x"], drawn["y"]) == pytest.approx(tuple(ordered[row]))
        assert drawn["sizex"] == pytest.approx(side * 0.92, rel=1e-6)
        picture = Image.open(io.BytesIO(base64.b64decode(drawn["source"].split(",", 1)[1])))
        assert picture.format == "JPEG" and max(picture.size) == 48
        pixels = np.asarray(picture.convert("L").resize((48, 48)), float)
        # its own image, of all the regions' images, is the one it looks most like
        assert int(np.argmin([np.abs(pixels - o).mean() for o in originals])) == n
    at.radio(key="p_thumbs").set_value("off").run()
    assert "images" not in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]


def test_neighbours_of_the_sidebar_image_and_of_a_dataset_image():
    at = app(NEIGHBOURS, per_class=8, k=5)
    assert_clean(at)
    seen = captions(at)
    assert seen[0] == "Query: Cat (Chelsea)" and len([c for c in seen if c.startswith("rank ")]) == 5
    at.radio(key="nn_query").set_value("dataset").run()
    bird = bundled("animal_mnist").subset(8).original(12)  # a bird (8 per class, in class order)
    at.number_input(key="nn_id").set_value(bird).run()  # by its id, as every page names it
    assert_clean(at)
    assert captions(at)[0].startswith(f"Query: #{bird} (true bird)")
    ranked = [c for c in captions(at)[1:] if c.startswith("rank ")]
    assert [c.split(" · ")[0] for c in ranked] == [f"rank {n}" for n in range(1, 6)]
    assert all(re.fullmatch(r"#\d+", c.split(" · ")[1]) for c in ranked), ranked
    assert all(c.split(" · ")[3].startswith("cosine distance ") for c in ranked), ranked
    labels = [c.split(" · ")[2] for c in ranked]
    assert len(labels) == 5 and labels.count("bird") >= 3, labels
    at.radio(key="p_metric").set_value("euclidean").run()
    assert_clean(at)
    assert "euclidean" in captions(at)[1]
    # what makes the query and its first neighbour similar, both ways
    similar = [c for c in captions(at) if c.startswith("Grad-CAM of ")]
    assert [c.split(" · ")[0] for c in similar] == [
        "Grad-CAM of the query toward the neighbour of rank 1's features",
        "Grad-CAM of the neighbour of rank 1 toward the query's features"]
    cosines = [float(c.split("cosine similarity ")[1]) for c in similar]
    assert cosines[0] == pytest.approx(cosines[1], abs=1e-4) and 0 < cosines[0] <= 1


def test_errors_page_lists_a_cell_with_links_to_explain():
    at = app(ERRORS, per_class=8)
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 1
    at.session_state["p_cell"] = "0,0"  # true bear, predicted bear
    at.run()
    assert_clean(at)
    heading = next(shown(m.value) for m in at.markdown if shown(m.value).startswith("#### True bear"))
    count = int(heading.split(": ")[1].split()[0])
    assert 0 < count <= 8 and len(captions(at)) == count
    assert len(at.get("link_button")) == count


def test_a_dataset_image_opens_in_explain_by_link():
    at = app(EXPLAIN, dataset="animal_mnist", index=4321, method="gradcam")
    assert_clean(at)
    assert at.radio(key="source").value == "dataset"
    assert captions(at)[0].startswith("Animal-MNIST silhouettes #4321 (labelled dog)")
    assert any(c.startswith("Grad-CAM for") for c in captions(at))


def test_bad_dataset_zip_shows_a_message():
    at = app(EMBEDDING)
    at.selectbox(key="p_dataset").set_value("zip").run()
    assert_clean(at)
    at.file_uploader(key="dataset_zip").upload("data.zip", b"not a zip", "application/zip").run()
    assert not at.exception
    assert any("not a zip archive" in shown(e.value) for e in at.error)


def test_sample_photos_dataset_maps_without_a_probe():
    at = app(EMBEDDING, dataset="samples", proj="pca")
    assert_clean(at)
    assert any("No predictions for this dataset" in shown(i.value) for i in at.info)
    assert any("PCA of 8 images" in shown(c.value) for c in at.caption)
    at.switch_page(ERRORS).run()
    assert_clean(at)
    assert any("No predictions for this dataset" in shown(i.value) for i in at.info)


REVIEWS = "pages/8_Reviews.py"


def test_explain_shows_faithfulness_pointing_and_sanity():
    at = settle(app())
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 4  # top-5, raw map, deletion, insertion
    assert any(shown(m.value).startswith("**Pointing game: hit.**") for m in at.markdown)
    at.button(key="sanity").click().run()
    assert_clean(at)
    seen = captions(at)
    assert "original" in seen and any(c.startswith("down to _fc: ρ =") for c in seen)
    assert any("depends on the model's weights" in shown(s.value) for s in at.success)


def test_compare_ranks_the_methods_against_a_random_map():
    at = settle(app(COMPARE, window=112, stride=112))
    # a method is listed once its curves exist: after a run that a fragment's rerun cut
    # short, AppTest can show the table of the run before it, so run again until it is whole
    deadline = time.monotonic() + 120
    while len(at.dataframe[0].value) < COMPARED + 1 and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert_clean(at)
    table = at.dataframe[0].value
    # every method but Score-CAM (on Explain only), and the random map
    missing = {r.title for r in RECORDS.values() if r.compare} - set(table["method"])
    assert list(table["method"])[-1] == "random map (reference)" and len(table) == COMPARED + 1, \
        missing
    assert set(table["pointing game"][:-1]) <= {"hit", "miss"}
    assert table["pointing game"].iloc[-1] == "hits 46% of the time"  # the random map's
    gradcam = table[table["method"] == "Grad-CAM"].iloc[0]
    reference = table.iloc[-1]
    assert gradcam["insertion AUC (higher is better)"] > reference["insertion AUC (higher is better)"]


def test_reviews_save_filter_edit_delete():
    at = settle(app())
    at.text_input(key="review_author").set_value("Ada")
    at.selectbox(key="review_verdict").set_value("right for the right reason")
    at.text_area(key="review_note").set_value("<script>alert('x')</script> looks at the face")
    at.button(key="FormSubmitter:review_form-Save review").click().run()
    assert_clean(at)
    saved = int(next(shown(s.value) for s in at.success if "review #" in s.value)
                .split("#")[1].rstrip("."))
    at.switch_page(REVIEWS).run()
    assert_clean(at)
    texts = [t.value for t in at.text]
    assert "<script>alert('x')</script> looks at the face" in texts  # shown as text
    assert any("deletion AUC: 0." in t for t in texts)
    at.text_input(key="rv_text").set_value("FACE").run()
    assert f"#{saved}" in " ".join(shown(m.value) for m in at.markdown)
    at.text_input(key="rv_text").set_value("no such words").run()
    assert not any(f"#{saved}" in shown(m.value) for m in at.markdown)
    at.text_input(key="rv_text").set_value("").run()
    at.toggle(key=f"edit_{saved}").set_value(True).run()
    form_note = next(t for t in at.text_area if t.value.startswith("<script>"))
    form_note.set_value("edited: the face, not the wall")
    at.button(key=f"FormSubmitter:form_{saved}-Save changes").click().run()
    assert_clean(at)
    assert "edited: the face, not the wall" in [t.value for t in at.text]
    at.button(key=f"delete_{saved}").click().run()
    at.button(key=f"really_{saved}").click().run()
    assert_clean(at)
    assert not any(f"#{saved}" in shown(m.value) for m in at.markdown)


def test_review_without_a_name_is_refused_with_a_message():
    at = app()
    at.button(key="FormSubmitter:review_form-Save review").click().run()
    assert not at.exception
    assert any("author's name is empty" in shown(w.value) for w in at.warning)


def test_a_deleted_review_is_restored_by_undo_and_from_the_deleted_list():
    from reviews import VERDICTS, Review
    from ui.trust import review_store

    store = review_store()
    saved = store.add(Review(author="Undo", verdict=VERDICTS[3], note="restore me",
                             link="sample=rocket", backbone="efficientnet_lite0",
                             weights="pretrained", image_hash="sample:rocket", method="saliency",
                             target=812, target_name="space shuttle"))
    at = app(REVIEWS)
    at.button(key=f"delete_{saved.id}").click().run()
    at.button(key=f"really_{saved.id}").click().run()
    assert_clean(at)
    assert f"Review #{saved.id} was deleted." in [shown(s.value) for s in at.success]
    assert not any(f"#{saved.id}" in shown(m.value) for m in at.markdown if "·" in m.value)
    at.button(key="undo_delete").click().run()
    assert_clean(at)
    assert store.get(saved.id).note == "restore me"
    at.button(key=f"delete_{saved.id}").click().run()
    at.button(key=f"really_{saved.id}").click().run()
    at.radio(key="rv_deleted").set_value(True).run()  # the deleted reviews
    assert "restore me" in [t.value for t in at.text]
    assert not at.get("download_button")  # the export holds no deleted review
    at.button(key=f"restore_{saved.id}").click().run()
    assert_clean(at)
    at.radio(key="rv_deleted").set_value(False).run()
    assert "restore me" in [t.value for t in at.text]


def test_a_read_only_demo_lists_reviews_and_saves_none(monkeypatch):
    monkeypatch.setenv("CNN_LENS_READONLY", "1")
    at = settle(app())
    assert_clean(at)
    said = [shown(i.value) for i in at.info]
    assert any("read-only demo" in s for s in said), said
    assert not [b for b in at.button if b.key and "review_form" in b.key]  # no form to fill
    at.switch_page(REVIEWS).run()
    assert_clean(at)
    assert any("read-only demo" in shown(i.value) for i in at.info)
    assert not [b for b in at.button if b.key and b.key.startswith(("delete_", "restore_"))]
    assert not at.toggle  # no Edit
