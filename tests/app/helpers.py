"""AppTest helpers: the app opened by a link, and what its pages show a reader."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from PIL import Image
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
EXPLAIN, COMPARE = "pages/1_Explain.py", "pages/2_Compare.py"
CLASSVIZ, ACTIVATIONS = "pages/3_Class_visualization.py", "pages/4_Activations.py"


def app(page: str | None = EXPLAIN, **params) -> AppTest:
    """A new session opening a link to ``page`` (None: the home page) carrying ``params``."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({k: str(v) for k, v in params.items()})
    if page is not None:
        at.switch_page(page)
    return at.run()


def shown(markdown: str) -> str:
    """What a reader sees of a Markdown source: backslash escapes undone (text from links and
    files reaches the page escaped, see ui.text.plain)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def captions(at: AppTest) -> list[str]:
    return [shown(c) for image in at.get("image") for c in image.captions]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [shown(e.value) for e in at.exception]
    assert not at.error, [shown(e.value) for e in at.error]


def settle(at: AppTest, timeout: float = 240) -> AppTest:
    """Rerun until the page's deferred results (the trust curves, computed behind every map)
    are on it; in a browser a fragment does this every second."""
    deadline = time.monotonic() + timeout
    while any("Computing the" in shown(c.value) for c in at.caption):
        assert time.monotonic() < deadline, "the deferred results never came"
        time.sleep(0.3)
        at.run()
    return at


def texts(elements) -> list[str]:
    """What a reader sees of Markdown elements (messages, captions, markdown)."""
    return [shown(e.value) for e in elements]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
