"""The README's library example runs as written and says what it claims."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # our own README
    result, cat, picture = namespace["result"], namespace["cat"], namespace["picture"]
    assert namespace["backbone"].categories[result.target] == "Egyptian cat"
    assert picture.shape == (cat.height, cat.width, 3) and picture.dtype == np.uint8


def test_readme_commands_match_the_makefile_and_ci():
    text = README.read_text()
    assert "make run" in text and "make test" in text
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (README.parent / ".ci" / "run").read_text()
