"""A choice made for one image (a class, the pointing game's box) belongs to that image: the next
image starts on its own; a link's choice holds for the image the link names."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from explain.data.samples import sample_image
from tests.app.helpers import EXPLAIN, app, assert_clean, captions, png, texts

TWO_MODELS = "pages/10_Two_models.py"


def upload(at, name: str, image: Image.Image):
    at.radio(key="source").set_value("upload").run()
    at.file_uploader(key="image_file").upload(name, png(image), "image/png").run()
    return at


def test_a_class_chosen_for_one_photo_does_not_follow_the_next(lite):
    at = app(EXPLAIN)
    at.selectbox(key="p_class").set_value(282).run()  # tiger cat, for the cat
    assert any(c.startswith("Grad-CAM for “tiger cat”") for c in captions(at))
    astronaut = sample_image("astronaut")
    upload(at, "astronaut.png", astronaut)
    assert_clean(at)
    assert at.selectbox(key="p_class").value == -1  # its own top class
    top = lite.predict(astronaut, k=1)[0].name
    assert any(c.startswith(f"Grad-CAM for “{top}”") for c in captions(at)), captions(at)
    assert not any("tiger cat" in c for c in captions(at))


def test_a_links_class_holds_for_the_image_it_names():
    at = app(EXPLAIN, sample="coffee", **{"class": 281})
    assert_clean(at)
    assert any(c.startswith("Grad-CAM for “tabby”") for c in captions(at))
    at.selectbox(key="p_sample").set_value("rocket").run()  # another image: its own top class
    assert at.selectbox(key="p_class").value == -1


def number_inputs(at) -> dict[str, object]:
    return {n.label: n for n in at.number_input if n.label in ("left", "top", "right", "bottom")}


def pointing(at) -> list[str]:
    return [t for t in texts(at.markdown) if t.startswith("**Pointing game")]


def test_the_pointing_games_box_belongs_to_its_image():
    at = upload(app(EXPLAIN), "strip.png", Image.new("RGB", (10, 3000), (120, 200, 40)))
    assert_clean(at)
    number_inputs(at)["right"].set_value(5).run()
    assert any("(0, 0, 5, 3000)" in t for t in pointing(at)), pointing(at)
    photo = sample_image("chelsea").resize((512, 512))
    at.file_uploader(key="image_file").upload("square.png", png(photo), "image/png").run()
    assert_clean(at)
    fields = number_inputs(at)
    assert [fields[n].value for n in ("left", "top", "right", "bottom")] == [0, 0, 512, 512]
    assert pointing(at) == []  # the whole image is no box
    fields["right"].set_value(300).run()
    fields = number_inputs(at)
    shown_box = tuple(fields[n].value for n in ("left", "top", "right", "bottom"))
    used = re.search(r"box \((\d+), (\d+), (\d+), (\d+)\)", pointing(at)[0]).groups()
    assert shown_box == tuple(int(v) for v in used) == (0, 0, 300, 512)


def test_two_models_explains_the_chosen_class_on_both():
    at = app(TWO_MODELS, sample="chelsea", method="gradcam", **{"class": 281})
    assert_clean(at)
    seen = captions(at)
    assert any(c.startswith("A: Grad-CAM for “tabby”") for c in seen), seen
    assert any(c.startswith("B: Grad-CAM for “tabby”") for c in seen), seen
    assert "Both explain “tabby”." in texts(at.caption)
    at.selectbox(key="p_class").set_value(-1).run()  # the picker of Explain, on this page
    assert any(c.startswith("B: Grad-CAM for “Egyptian cat”") for c in captions(at))
    assert "Both explain “Egyptian cat” (A's top class)." in texts(at.caption)
    assert np.isfinite([float(m.value) for m in at.metric]).all()


def test_a_link_made_on_an_upload_asks_for_the_file_and_applies_its_view_to_it_alone(lite):
    """A view of an uploaded image: its link says the file (name, size, digest); opened, the
    page asks for that file instead of showing the default photo, applies the view (its class)
    once the same file is given, and applies none of it to another file."""
    astronaut = sample_image("astronaut")
    at = upload(app(EXPLAIN), "my astronaut.png", astronaut)
    at.selectbox(key="p_class").set_value(282).run()
    assert_clean(at)
    link = dict(at.query_params)
    params = {k: v[0] if isinstance(v, list) else v for k, v in link.items()}
    assert params["upload"] == "my astronaut.png" and "sample" not in params
    assert params["upload_size"] == f"{astronaut.width}x{astronaut.height}"
    assert params["class"] == "282"
    opened = app(EXPLAIN, **params)
    assert not opened.exception
    said = " ".join(texts(opened.main.info))
    assert "This view was made on an uploaded image, my astronaut.png" in said, said
    assert f"({astronaut.width} x {astronaut.height} px)" in said
    assert not captions(opened) or not any(c.startswith("Grad-CAM") for c in captions(opened))
    opened.file_uploader(key="image_file").upload("my astronaut.png", png(astronaut),
                                                  "image/png").run()
    assert_clean(opened)
    assert any(c.startswith("Grad-CAM for “tiger cat”") for c in captions(opened))  # the view
    other = app(EXPLAIN, **params)
    other.file_uploader(key="image_file").upload("coffee.png", png(sample_image("coffee")),
                                                 "image/png").run()
    assert_clean(other)
    assert other.selectbox(key="p_class").value == -1  # not the view's class
    assert any("the view was made on another image" in t for t in texts(other.info))
    now = {k: v[0] if isinstance(v, list) else v for k, v in other.query_params.items()}
    assert now["upload"] == "coffee.png" and now.get("class") == "-1"  # the link is of this one


def test_a_users_own_next_upload_is_not_taken_for_a_links_view():
    """After a link's view of an upload was given another file, the user's own next upload is
    theirs: no note that a view was made on another image."""
    params = {"upload": "a.png", "upload_size": "10x10", "upload_of": "0123456789abcdef"}
    at = app(EXPLAIN, **params)
    at.file_uploader(key="image_file").upload("coffee.png", png(sample_image("coffee")),
                                              "image/png").run()
    assert any("the view was made on another image" in t for t in texts(at.info))
    at.file_uploader(key="image_file").upload("rocket.png", png(sample_image("rocket")),
                                              "image/png").run()
    assert_clean(at)
    assert not any("the view was made on another image" in t for t in texts(at.info))
