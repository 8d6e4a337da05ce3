"""Text that comes from outside (a link, a file name, a file's content, an exception about
them) made safe to show: it reaches the page as the characters it holds, never as markup.

Streamlit renders GitHub-flavoured Markdown in every message, caption and label (links, images,
autolinked URLs, ``:red[...]`` directives, ``$...$`` maths). Plotly's labels (a subset of HTML)
are escaped where the figures are made, in ``explain.render.figures``.
"""

from __future__ import annotations

import re
import string
import unicodedata

SHORT = 80  # a value quoted from a link or a file name
LONG = 600  # a message that quotes such values

_MARKDOWN = {c: "\\" + c for c in string.punctuation}  # CommonMark escapes any ASCII punctuation
# GFM's autolink literals (http://..., www...., name@host) are found in the text after escapes
# are undone, so escaping cannot stop them: a zero-width space inside the trigger does
_AUTOLINK = re.compile(r"(?i)(https?:|ftp:|www(?=\.))|(@)")
_ZWSP = "\u200b"


def _clean(value: object, limit: int) -> str:
    """``value`` as one line of printable text, cut to ``limit`` characters (with an ellipsis)."""
    text = str(value)
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(value: object, limit: int = SHORT) -> str:
    """``value`` for a Streamlit Markdown context (``st.markdown``, ``st.info``, ``st.caption``,
    image captions, widget labels): control and separator characters become spaces, the text is
    cut to ``limit`` characters, every ASCII punctuation mark is backslash-escaped and autolink
    triggers get a zero-width space, so no link, image, emphasis, autolink, directive, HTML or
    maths can form."""
    text = _AUTOLINK.sub(lambda m: m.group(1) + _ZWSP if m.group(1) else _ZWSP + "@",
                         _clean(value, limit))
    return text.translate(str.maketrans(_MARKDOWN))


def quoted(value: object, limit: int = SHORT) -> str:
    """``plain(value)`` between typographic quotes, for "value 'x' is not valid" notes."""
    return f"“{plain(value, limit)}”"


def problem(slot, text: str, kind: str = "error") -> None:
    """A problem the user can act on, as a ``kind`` message ("error", "warning", "info") in
    ``slot`` (``st`` for the main area, or any container). ``text`` is plain text, and may quote
    a file's name or content (an exception's message): it is escaped."""
    getattr(slot, kind)(plain(text, LONG))
