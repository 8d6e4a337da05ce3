"""Team reviews: saved views with a verdict and a note, in a real database, and HTML reports."""

from .store import VERDICTS, Review, ReviewError, ReviewStore

__all__ = ["VERDICTS", "Review", "ReviewError", "ReviewStore"]
