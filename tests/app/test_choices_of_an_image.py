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
