"""Team reviews: saved views with a verdict and a note, in a real database, and HTML reports."""

from .store import (
    READONLY,
    SCORE_TITLES,
    VERDICTS,
    Review,
    ReviewError,
    ReviewStore,
    box_text,
    score_lines,
)

__all__ = ["READONLY", "SCORE_TITLES", "VERDICTS", "Review", "ReviewError", "ReviewStore", "box_text",
           "score_lines"]
