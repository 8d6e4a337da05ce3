"""One record per method, next to its code: what the pages, the links and the checks know of a
method comes from it, and no page or ui module names a method."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from explain import METHODS, RECORDS, ExplainError, explain

ROOT = Path(__file__).resolve().parents[2]


def test_every_method_has_a_record_that_says_what_it_is():
    assert set(RECORDS) == set(METHODS)
    for name, record in RECORDS.items():
        assert record.name == name and record.title and "(" in record.about, name  # its paper
        accepted = inspect.signature(METHODS[name]).parameters
        for option in record.options:
            assert option.name in accepted, (name, option.name)
            if option.kind != "layer":
                assert option.check(option.default, record.title) == option.default
        slow_somewhere = record.slow(record.defaults()) or any(
            record.slow({**record.defaults(), o.name: o.high}) for o in record.options
            if o.high is not None)
        if slow_somewhere:  # a slow run reports its progress and can be stopped
            assert "progress" in accepted, name
        if "layer" in record.needs:
            assert any(o.kind == "layer" for o in record.options), name


def test_the_links_parameters_are_the_records_options():
    from ui import links

    for record in RECORDS.values():
        for option in record.options:
            param = links.PARAMS[option.key]
            if option.kind == "choice":
                for choice in option.choices:
                    assert param.parse(str(choice)) == choice
                with pytest.raises(ValueError):
                    param.parse("not-a-choice")
            elif option.kind in ("int", "float"):
                assert param.parse(str(option.high)) == option.high
                with pytest.raises(ValueError):
                    param.parse(str(option.high + 1))


@pytest.mark.parametrize(("method", "options", "message"), [
    ("integrated_gradients", {"steps": 1}, "Integrated Gradients takes 2 to 512 steps, not 1"),
    ("occlusion", {"window": 500}, "Occlusion takes 8 to 112 px for the window, not 500"),
    ("occlusion", {"baseline": "purple"}, "Occlusion: the baseline is one of grey"),
    ("smoothgrad", {"noise": "loud"}, "SmoothGrad: the noise is a number"),
    ("smoothgrad", {"of": "occlusion"}, "SmoothGrad: averages one of"),
])
def test_an_option_out_of_range_names_the_method_and_the_option(lite, chelsea, method, options,
                                                                 message):
    with pytest.raises(ExplainError, match=re.escape(message)):
        explain(lite, chelsea, method, **options)


def test_a_slow_path_method_reports_its_progress(lite, chelsea):
    seen = []
    explain(lite, chelsea, "integrated_gradients", steps=80, progress=lambda d, t: seen.append(d))
    assert RECORDS["integrated_gradients"].slow({"steps": 80})
    assert seen[-1] == 80 and seen == sorted(seen) and len(seen) >= 5
    seen.clear()
    explain(lite, chelsea, "smoothgrad", samples=20, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(8, 20), (16, 20), (20, 20)]


def test_no_page_or_ui_module_names_a_method():
    names = "|".join(map(re.escape, METHODS))
    quoted = re.compile(rf"""["']({names})["']""")
    for path in [*ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py"), ROOT / "app.py"]:
        found = quoted.findall(path.read_text())
        assert not found, (path.name, found)


def test_a_target_of_the_wrong_kind_is_named_with_the_method(lite, chelsea):
    """A box for a classifier, a word, a kind made for another task: a message naming the
    method and what this model takes, from the library (the pages show it as it is)."""
    from dataclasses import dataclass
    from typing import ClassVar

    from explain import Target, explain_batch

    with pytest.raises(ExplainError, match=r"^Grad-CAM: a box \(x0, y0, x1, y1\) is a "
                                           r"detector's target; this model takes a class"):
        explain(lite, chelsea, "gradcam", (10, 10, 50, 50))
    with pytest.raises(ExplainError, match=r"^Saliency: 'cat' is not a target"):
        explain(lite, chelsea, "saliency", "cat")

    @dataclass(frozen=True)
    class Region(Target):  # the shape of a segmenter's target, asked of a classifier
        label: int
        kind: ClassVar[str] = "region"
        tasks: ClassVar[frozenset] = frozenset({"segmentation"})

    with pytest.raises(ExplainError, match=r"^Grad-CAM: a region target is for a segmentation "
                                           r"model; EfficientNet-Lite0 \(offline\) is a "
                                           r"classification model\."):
        explain(lite, chelsea, "gradcam", Region(3))
    with pytest.raises(ExplainError, match=r"^Grad-CAM: give one target \(or None\) for each "
                                           r"image: 2 images, 1 targets\."):
        explain_batch(lite, [chelsea, chelsea], "gradcam", [None])
