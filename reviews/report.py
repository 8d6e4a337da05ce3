"""Reviews as one self-contained HTML file (thumbnails embedded), to mail or attach to a model
card. Every text a user wrote is escaped: it shows as text, never as markup."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape

from .store import Review, box_text, score_lines

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.5rem; } .meta { color: #666; font-size: .9rem; }
.review { display: flex; gap: 1rem; border-top: 1px solid #ddd; padding: 1rem 0; }
.review img { flex: none; align-self: flex-start; width: auto; height: auto; max-width: 320px;
              max-height: 200px; border-radius: 4px; }
.verdict { font-weight: 600; } .note { white-space: pre-wrap; margin: .5rem 0; }
table.scores td { padding: 0 .75rem 0 0; font-size: .9rem; }
"""


def html_report(reviews: Sequence[Review], title: str = "CNN Lens reviews",
                base_url: str = "", methods: Mapping[str, str] | None = None) -> str:
    """``methods``: a method's title by its name (each method's record's title)."""
    methods = methods or {}
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1><p class='meta'>{len(reviews)} review"
        f"{'s' if len(reviews) != 1 else ''}, made {made}.</p>",
    ]
    for review in reviews:
        image = (f"<img alt='thumbnail' src='data:image/png;base64,"
                 f"{base64.b64encode(review.thumbnail).decode()}'>" if review.thumbnail else "")
        scores = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>"
                         for k, v in score_lines(review.scores))
        link = escape(f"{base_url}{review.page.replace(' ', '_')}?{review.link}", quote=True)
        when = review.created.strftime("%Y-%m-%d %H:%M") if review.created else ""
        what = (f"over {escape(review.target_name)}" if review.target < 0  # a Gallery slice
                else f"for “{escape(review.target_name)}” ({review.target})")
        if review.box is not None:
            what += f", {box_text(review.box)}"
        parts.append(
            f"<div class='review' id='review-{review.id}'>{image}<div>"
            f"<div class='verdict'>{escape(review.verdict)}</div>"
            f"<div class='meta'>#{review.id} by {escape(review.author)}, {when} · "
            f"{escape(review.backbone)} ({escape(review.weights)}) · "
            f"{escape(methods.get(review.method, review.method))} "
            f"{what}</div>"
            f"<div class='note'>{escape(review.note)}</div>"
            f"<table class='scores'>{scores}</table>"
            f"<div class='meta'><a href='{link}'>open this view</a></div></div></div>")
    parts.append("</body></html>")
    return "".join(parts)
