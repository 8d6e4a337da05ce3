"""Every link the app makes, after one session has visited every page: it carries the values
of the page it opens and the shared model and image, nothing another page left behind, and it
opens with no "Ignored from the link" line."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from tests.app.helpers import app, assert_clean, shown, texts
from ui.nav import NAVIGATION

PAGES = {label: path for path, label, _ in NAVIGATION}
LINK = re.compile(r"\]\(((?:Units|Explain)\?[^)\s]*)\)")


def made_links(at) -> list[str]:
    """The links a page shows: its link buttons and its Markdown links to other pages."""
    found = [b.proto.url for b in at.get("link_button")]
    for element in [*at.markdown, *at.caption]:
        found += LINK.findall(element.value)
    return [link for link in found if "?" in link]


def ignored(at) -> list[str]:
    return [t for t in texts(at.info) if t.startswith("Ignored from the link")]


def test_every_link_after_visiting_every_page_opens_without_an_ignored_line():
    at = app(PAGES["Segmenter"], seg_method="gradcam")  # a segmenter's layer in the session
    assert_clean(at)
    addresses, made = {}, []
    for label, params in (("Units", {"usort": "iou"}), ("Detector", {}),
                          ("Explain", {"carrying": True}), ("Activations", {"channel": 5}),
                          ("Errors", {"cell": "4,2"}),
                          ("Embedding map", {"point": "3"}), ("Reviews", {}),
                          ("Segmenter", {}), ("Explain", {})):
        for name, value in params.items():
            state = name if name == "carrying" else f"p_{name}"  # a toggle not in links
            at.session_state[state] = int(value) if name == "point" else value
        at.switch_page(PAGES[label]).run()
        assert not at.exception, (label, [shown(e.value) for e in at.exception])
        addresses[label] = dict(at.query_params)
        kinds = {}  # two of each kind a page makes (an Errors cell has a link an image)
        for link in made_links(at):
            kinds.setdefault(link.split("?")[0], []).append(link)
        made += [(label, link) for links in kinds.values() for link in links[:2]]
    assert any(link.startswith("Explain?") for _, link in made), made
    assert any(link.startswith("Units?") for _, link in made), made
    # a page's address carries its own values and the shared ones only
    assert "seg_method" not in addresses["Explain"] and "usort" not in addresses["Explain"]
    assert "layer" not in addresses["Errors"] and "seg_method" not in addresses["Units"]
    for label, link in made:
        page, query = link.split("?", 1)
        params = dict(parse_qsl(query))
        assert "seg_method" not in params and "usort" not in params, (label, link)
        opened = app(PAGES[page], **params)
        assert not opened.exception, (label, link)
        assert not ignored(opened), (label, link, ignored(opened))
    for label, params in addresses.items():
        flat = {k: v[0] if isinstance(v, list) else v for k, v in params.items()}
        opened = app(PAGES[label], **flat)
        assert not ignored(opened), (label, flat, ignored(opened))


def test_a_link_says_the_real_reason_a_value_is_ignored():
    """A page past the last is the last, said; a class that is not in the scene is said so, not
    "does not fit this model"."""
    at = app(PAGES["Segmenter"], scene=2, seg_class=2)  # scene 2: classes 3, 5, 6 and 8
    assert not at.exception
    said = " ".join(ignored(at))
    assert "seg_class = “2” is not segmented in this image" in said, said
    at = app(PAGES["Gallery"], kind="objects", det_scenes=5, opage=999)
    assert not at.exception
    assert "opage = “999” is past the last page" in " ".join(ignored(at)), ignored(at)
