"""The README's library example runs as written and says what it claims."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 3  # one image; a batch, each image its own target; a layer's units
    namespace: dict = {}
    for block in blocks:  # the second goes on from the first, as a reader would
        exec(compile(block, "README.md", "exec"), namespace)  # our own README
    result, cat, picture = namespace["result"], namespace["cat"], namespace["picture"]
    assert namespace["backbone"].categories[result.target] == "Egyptian cat"
    assert picture.shape == (cat.height, cat.width, 3) and picture.dtype == np.uint8
    tiger_cat, coffee = namespace["maps"]
    assert tiger_cat.target == 282 and tiger_cat.target_title == "tiger cat"
    assert coffee.target_title == namespace["backbone"].predict(
        namespace["sample_image"]("coffee"), k=1)[0].name
    top, labels, unit = namespace["top"], namespace["labels"], namespace["drawn"]
    assert top.indices.shape == top.values.shape == (320, 9)
    assert top.locations.shape == (320, 9, 2) and top.boxes.shape == (320, 9, 4)
    assert labels.iou.shape == (320, 10) and unit.image.shape == (224, 224, 3)
    assert unit.scores[-1] > unit.scores[0]  # the ascent raised the neuron


def test_readme_commands_match_the_makefile_and_ci():
    text = README.read_text()
    assert "make run" in text and "make test" in text
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (README.parent / ".ci" / "run").read_text()
