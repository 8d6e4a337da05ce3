"""What the browser tests read off a page, and their screenshots."""

from __future__ import annotations

import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"


def nav(page, name: str):
    return page.locator("[data-testid=stSidebar]").get_by_role("link", name=name, exact=True)


def selected(page, label: str) -> str:
    """The value a select box shows (it is the value of its search input)."""
    box = page.locator("[data-testid=stSelectbox]").filter(has_text=label).first
    return box.locator("input").input_value()


def captions(page) -> list[str]:
    return page.locator("[data-testid=stImageCaption]").all_inner_texts()


def wait_for_caption(page, start: str, count: int = 1) -> None:
    page.wait_for_function(
        """([start, count]) => [...document.querySelectorAll('[data-testid=stImageCaption]')]
               .filter(e => e.innerText.startsWith(start)).length >= count""",
        arg=[start, count])


def first_chart(page, ready: str):
    """The page's first plotly chart, once drawn and once the text ``ready`` is on the page
    (what the run draws after it), with a second for the chart's own handlers to settle."""
    chart = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    chart.locator(".main-svg").first.wait_for()
    page.get_by_text(ready).wait_for()
    page.wait_for_timeout(1000)
    return chart


def assert_no_error(page) -> None:
    page.wait_for_timeout(300)  # let the last deltas land
    assert page.locator("[data-testid=stException]").count() == 0
    errors = page.locator("[data-testid=stAlertContentError]").all_inner_texts()
    assert not errors, errors
    assert "Traceback" not in page.inner_text("body")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def upload_on_explain(page, server: str, name: str, image) -> None:
    """Open Explain, wait for its first map, and upload ``image`` (a PIL image) as ``name``."""
    page.goto(server + "/Explain")
    wait_for_caption(page, "Grad-CAM for")
    page.locator("[data-testid=stSidebar]").get_by_text("Upload", exact=True).click()
    photo = io.BytesIO()
    image.save(photo, format="PNG")
    page.locator("[data-testid=stSidebar] input[type=file]").set_input_files(
        files=[{"name": name, "mimeType": "image/png", "buffer": photo.getvalue()}])
