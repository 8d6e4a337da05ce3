"""A model of the dataset's own classes on every page: the pretrained backbone with a head
fitted on the dataset's features, chosen in the sidebar or by a link, its held-out predictions
on Errors, its classes explained on Explain, before and after transfer on Two models."""

from __future__ import annotations

from urllib.parse import parse_qsl

from explain.data.datasets import ANIMAL_CLASSES
from tests.app.helpers import EXPLAIN, app, assert_clean, captions, texts

ERRORS, TWO_MODELS = "pages/7_Errors.py", "pages/10_Two_models.py"
GALLERY = "pages/9_Gallery.py"


def test_errors_open_explain_on_the_datasets_own_classes():
    at = app(ERRORS, per_class=20)
    at.radio(key="weights_choice").set_value("fitted").run()
    assert_clean(at)
    said = " ".join(texts(at.caption))
    assert "linear head fitted on this dataset's penultimate features" in said, said
    assert "a k-NN probe on the same features" in said
    assert any("fitted to Animal-MNIST" in t for t in texts(at.sidebar.caption))
    at.session_state["p_cell"] = "4,2"  # true dog, predicted cat
    at.run()
    assert_clean(at)
    links = [b.proto.url for b in at.get("link_button")]
    assert links, "no dog was taken for a cat"
    params = dict(parse_qsl(links[0].split("?", 1)[1]))
    assert params["weights"] == "fitted" and params["dataset"] == "animal_mnist"
    assert params["per_class"] == "20"

    explained = app(EXPLAIN, **params)  # a colleague opens the link: the head is refitted
    assert_clean(explained)
    caption = next(c for c in captions(explained) if c.startswith("Grad-CAM for"))
    assert caption.split("“")[1].split("”")[0] in ANIMAL_CLASSES, caption  # not "hatchet"
    # the cell's predicted class, as the matrix says it
    assert explained.selectbox(key="p_class").value == ANIMAL_CLASSES.index("cat")
    explained.selectbox(key="p_class").set_value(ANIMAL_CLASSES.index("dog")).run()
    assert any(c.startswith("Grad-CAM for “dog”") for c in captions(explained))


def test_two_models_before_and_after_transfer():
    at = app(TWO_MODELS, dataset="animal_mnist", per_class=20, index=4321, method="gradcam",
             backbone_b="efficientnet_lite0", weights_b="fitted")
    assert_clean(at)
    seen = captions(at)
    b = next(c for c in seen if c.startswith("B: Grad-CAM for"))
    assert b.split("“")[1].split("”")[0] in ANIMAL_CLASSES, seen
    assert any(c.startswith("A: Grad-CAM for") for c in seen)  # ImageNet's model: before
    assert any(t.startswith("The two models have different classes: A explains")
               for t in texts(at.caption))


def test_a_head_cannot_be_fitted_on_one_photo_per_class():
    at = app(EXPLAIN, weights="fitted", dataset="samples")
    assert not at.exception
    said = " ".join(texts(at.main.warning) + texts(at.main.error) + texts(at.main.info))
    assert "No head can be fitted on Sample photos" in said, said
    assert "at least two images" in said


def test_a_dataset_pages_links_explain_in_the_datasets_classes_with_the_imagenet_model():
    """Errors on Animal-MNIST with the sidebar's ImageNet weights: the matrix is the probe's,
    in the dataset's classes, so the Explain link of a dog taken for a cat opens the head
    fitted to those classes, on the predicted class: "Grad-CAM for “cat”" (it was "hatchet"),
    said in a caption. The Gallery's and the Embedding map's links follow the same rule."""
    at = app(ERRORS, per_class=20, cell="4,2")  # true dog, predicted cat
    assert_clean(at)
    links = [b.proto.url for b in at.get("link_button")]
    assert links, "no dog was taken for a cat"
    params = dict(parse_qsl(links[0].split("?", 1)[1]))
    assert params["weights"] == "fitted" and params["class"] == str(ANIMAL_CLASSES.index("cat"))
    assert "layer" not in params or params["layer"].startswith("_")  # a layer of this model
    explained = app(EXPLAIN, **params)
    assert_clean(explained)
    assert any(c.startswith("Grad-CAM for “cat”") for c in captions(explained)), \
        captions(explained)
    assert any(t.startswith("Explained with a head fitted to the classes of Animal-MNIST")
               for t in texts(explained.caption))
    for page, extra in ((GALLERY, {"explain_count": 6}),
                        ("pages/5_Embedding_map.py", {"point": 3, "proj": "pca"})):
        other = app(page, per_class=20, **extra)
        if page == GALLERY:
            other.button(key="explain_slice").click().run()
        assert_clean(other)
        urls = [b.proto.url for b in other.get("link_button") if "Explain?" in b.proto.url]
        assert urls, page
        params = dict(parse_qsl(urls[0].split("?", 1)[1]))
        assert params["weights"] == "fitted" and int(params["class"]) < len(ANIMAL_CLASSES)
