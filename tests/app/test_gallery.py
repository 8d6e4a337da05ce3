"""The Gallery, through its widgets on the real model and dataset: a slice explained in
batches, each card's own AUC equal to the one computed image by image, the scores over the
slice equal to the mean of the cards', sorting, filtering, pages, and the slice saved as a
review."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch

from explain import explain, to_heatmap
from explain.analysis.features import PENULTIMATE, extract_features
from explain.analysis.probes import assess
from explain.data.datasets import bundled
from explain.evaluate.faithfulness import faithfulness
from explain.evaluate.slices import SliceSpec, members
from tests.app.helpers import app, assert_clean, captions, texts

GALLERY = "pages/9_Gallery.py"


def cards(at) -> list[str]:
    return [c for c in texts(at.caption) if " · deletion " in c]


def auc(card: str, which: str) -> float:
    return float(re.search(rf"{which} (\d\.\d+)", card).group(1))


@pytest.fixture(scope="module")
def animals(lite):
    dataset = bundled("animal_mnist").subset(5)
    features = extract_features(lite, dataset, PENULTIMATE)
    return dataset, features, assess(features, dataset, lite.categories)


def test_a_slice_explained_card_by_card_with_its_scores(lite, animals):
    dataset, features, assessment = animals
    at = app(GALLERY, dataset="animal_mnist", per_class=5, slice="mistaken", slice_count=6,
             method="gradcam", explain_count=6)
    assert_clean(at)
    assert not cards(at)  # nothing is computed before it is asked for
    at.button(key="explain_slice").click().run()
    assert_clean(at)
    shown = cards(at)
    expected = members(SliceSpec("mistaken", count=6), dataset, features, assessment)
    assert [c.split(" · ")[0] for c in shown] == [dataset.name(int(i)) for i in expected]
    deletion = []
    for index in expected:
        image = dataset.image(int(index))
        curves = faithfulness(lite, image, explain(lite, image, "gradcam"), steps=10)
        deletion.append(curves.deletion_auc)
    for card, value in zip(shown, deletion, strict=True):
        assert auc(card, "deletion") == pytest.approx(value, abs=6e-4)  # shown to 3 decimals

    table = at.dataframe[0].value
    row = table[table["method"] == "Grad-CAM"].iloc[0]
    mean = float(row["deletion AUC (lower is better)"].split(" [")[0])
    assert mean == pytest.approx(np.mean(deletion), abs=6e-4)
    low, high = (float(v) for v in row["deletion AUC (lower is better)"].split("[")[1]
                 .rstrip("]").split(", "))
    assert low < mean < high
    # the silhouettes are masks: each map's relevance mass accuracy against its image's
    from explain.evaluate.segmentation import relevance_mass

    masses = [relevance_mass(explain(lite, dataset.image(int(i)), "gradcam").heatmap,
                             dataset.mask(int(i))) for i in expected]
    shown_mass = row["mass in the object (relevance mass accuracy)"]
    assert float(shown_mass.split(" [")[0]) == pytest.approx(np.nanmean(masses), abs=6e-4)

    at.selectbox(key="p_sort").set_value("deletion_auc").run()
    ordered = [auc(c, "deletion") for c in cards(at)]
    assert ordered == sorted(ordered) and len(ordered) == 6
    at.radio(key="p_show").set_value("wrong").run()
    wrong = cards(at)
    truth = {dataset.name(int(i)): (dataset.classes[dataset.labels[i]],
                                    dataset.classes[assessment.predicted[i]]) for i in expected}
    assert wrong and all(truth[c.split(" · ")[0]][0] != truth[c.split(" · ")[0]][1]
                         for c in wrong)

    # a second method over the same slice: the table compares them
    at.selectbox(key="p_method").set_value("saliency").run()
    at.button(key="explain_slice").click().run()
    assert_clean(at)
    assert set(at.dataframe[0].value["method"]) == {"Grad-CAM", "Saliency"}
    assert any(t.startswith("Mean and 95% interval over the slice. Most faithful here:")
               for t in texts(at.caption))

    # saved as a review: its definition, its scores, its pictures
    at.text_input(key="review_author").input("gallery-test")
    at.text_area(key="review_note").input("silhouettes")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert_clean(at)
    from reviews import ReviewStore

    saved = [r for r in ReviewStore().find() if r.author == "gallery-test"]
    assert len(saved) == 1 and saved[0].page == "Gallery" and saved[0].target == -1
    assert "the 6 most mistaken" in saved[0].target_name and saved[0].scores["images"] == 6
    assert "slice=mistaken" in saved[0].link and saved[0].thumbnail.startswith(b"\x89PNG")


def test_large_slices_page_through_without_recomputing(lite):
    at = app(GALLERY, dataset="animal_mnist", per_class=5, slice="all", method="cam",
             explain_count=30)
    at.button(key="explain_slice").click().run()
    assert_clean(at)
    first = cards(at)
    assert len(first) == 24 and "Cards 1-24 of 30." in texts(at.caption)
    at.number_input(key="p_gpage").set_value(2).run()
    assert_clean(at)
    second = cards(at)
    assert len(second) == 6 and "Cards 25-30 of 30." in texts(at.caption)
    assert not set(first) & set(second)
    assert not [b for b in at.button if b.key == "explain_slice"]  # known: no button again


def test_the_maps_selection_is_used_by_the_errors_and_neighbours_pages(animals):
    dataset, _, assessment = animals
    selected = [1, 4, 7, 12, 20, 33, 41, 47]  # rows of the 5-per-class subset
    at = app("pages/7_Errors.py", dataset="animal_mnist", per_class=5,
             sel=",".join(map(str, selected)))
    assert_clean(at)
    at.toggle(key="only_selection").set_value(True).run()
    assert_clean(at)
    z = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["z"]  # a typed array
    shown = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(10, 10)
    expected = np.zeros((10, 10), dtype=np.int64)
    np.add.at(expected, (dataset.labels[selected], assessment.predicted[selected]), 1)
    np.testing.assert_array_equal(shown, expected)

    at = app("pages/6_Neighbours.py", dataset="animal_mnist", per_class=5, k=3,
             sel=",".join(map(str, selected)))
    at.radio(key="nn_query").set_value("dataset").run()
    at.number_input(key="nn_id").set_value(dataset.original(12)).run()
    at.toggle(key="only_selection").set_value(True).run()
    assert_clean(at)
    neighbours = [c for c in captions(at) if c.startswith("rank ")]
    assert len(neighbours) == 3
    allowed = {dataset.classes[dataset.labels[i]] for i in selected if i != 12}
    assert all(c.split(" · ")[2] in allowed for c in neighbours), neighbours


def test_a_selection_is_used_only_on_the_images_it_was_made_on(animals):
    """A selection's rows index the images it was made on: the same rows of another subset
    are other images, so a slice of them is refused with a message, not shown."""
    dataset = animals[0]
    selected = [1, 4, 7, 12]
    link = dict(dataset="animal_mnist", slice="selection", sel=",".join(map(str, selected)),
                sel_of=dataset.digest)
    at = app(GALLERY, per_class=5, **link)
    assert_clean(at)
    assert "Slice: a selection of 4 images: 4 images." in texts(at.caption)
    assert [b for b in at.button if b.key == "explain_slice"]

    at.slider(key="p_per_class").set_value(10).run()  # the same rows of another subset
    assert_clean(at)
    assert any("selected on other images" in i for i in texts(at.info))
    assert not [c for c in texts(at.caption) if c.startswith("Slice:")]
    assert not [b for b in at.button if b.key == "explain_slice"]

    at = app(GALLERY, per_class=10, **link)  # a link that says so itself
    assert any("selected on other images" in i for i in texts(at.info))
    assert not [b for b in at.button if b.key == "explain_slice"]



def test_a_slices_progress_moves_batch_by_batch_and_its_scores_are_each_images_own(lite,
                                                                                   animals):
    """The maps (one batch of four), then the scores' passes in batches across the images: 4
    images x 2 maps (its own, a random one) x 2 curves x 6 steps. Every card's AUCs are those
    of its image scored alone."""
    from explain.evaluate.faithfulness import deletion_insertion, random_map_curves
    from explain.evaluate.slices import explain_slice

    dataset = animals[0]
    seen = []
    run = explain_slice(lite, dataset, [0, 1, 2, 3], "gradcam", steps=5,
                        progress=lambda done, total: seen.append((done, total)))
    assert len(run.cards) == 4
    maps, scores = seen[:1], seen[1:]
    assert maps == [(4, 4)] and scores[-1] == (96, 96) and len(scores) > 2
    assert [d for d, _ in scores] == sorted(d for d, _ in scores)
    for card in run.cards[::3]:
        inputs = lite.preprocess(dataset.image(card.index))
        saliency = to_heatmap(torch.from_numpy(card.explanation.raw), inputs.shape[-2:])
        alone = deletion_insertion(lite.model, inputs, saliency, card.explanation.target, 5)
        chance = random_map_curves(lite.model, inputs, card.explanation.target, 5, count=1,
                                   seed=card.index)
        assert abs(card.deletion_auc - alone.deletion_auc) < 1e-5
        assert abs(card.insertion_auc - alone.insertion_auc) < 1e-5
        assert abs(card.random_deletion_auc - chance.deletion_auc) < 1e-5
        assert abs(card.random_insertion_auc - chance.insertion_auc) < 1e-5
