"""Reviews in a database through SQLAlchemy: an SQLite file by default (WAL mode, so readers
never wait for a writer), or any URL in ``CNN_LENS_DB`` (e.g. postgresql://...).

The schema is created on first start and carried forward by numbered migrations
(``reviews/migrations.py``): the ``schema_version`` table records which have run.
There are no accounts: anyone on the team may edit or delete any review.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, event, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .migrations import migrate
from .schema import ReviewRow

DB_ENV = "CNN_LENS_DB"
READONLY_ENV = "CNN_LENS_READONLY"  # "1": a demo that lists and exports reviews, changes none
READONLY = ("This is a read-only demo: reviews can be listed and exported here, not saved, "
            "edited or deleted.")
VERDICTS = ("right for the right reason", "right for the wrong reason", "wrong", "unsure")
MAX_NOTE = 20_000
MAX_AUTHOR = 120


# what a review's scores are called where people read them (the Reviews page, the HTML export)
SCORE_TITLES = {"probability": "probability", "images": "images",
                "deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC",
                "random_deletion_auc": "random map's deletion AUC",
                "random_insertion_auc": "random map's insertion AUC",
                "pointing_game": "pointing game", "box_score": "box score (IoU + class score)",
                "energy_in_box": "share of the map in the box", "box_area": "box's share of the image"}


def box_text(box) -> str:
    """How a review's box is written where people read it."""
    return "box (" + ", ".join(f"{v:.0f}" for v in box) + ")"


def score_lines(scores: dict) -> list[tuple[str, str]]:
    """(title, value) per score, in ``SCORE_TITLES``' order, floats to three decimals."""
    order = list(SCORE_TITLES)
    ranked = sorted(scores, key=lambda k: (order.index(k) if k in order else len(order), k))
    return [(SCORE_TITLES.get(k, k.replace("_", " ")),
             f"{scores[k]:.3f}" if isinstance(scores[k], float) else str(scores[k]))
            for k in ranked]


class ReviewError(ValueError):
    """A review cannot be saved or found; ``str(err)`` is the user message."""


@dataclass(frozen=True)
class Review:
    """One saved view. ``link`` is the query string that reopens it; ``scores`` are the
    faithfulness numbers seen when it was saved."""

    author: str
    verdict: str
    note: str
    link: str
    backbone: str
    weights: str
    image_hash: str
    method: str
    target: int
    target_name: str
    page: str = "Explain"
    thumbnail: bytes = b""  # PNG
    scores: dict = field(default_factory=dict)
    id: int | None = None
    created: datetime | None = None
    updated: datetime | None = None
    deleted: datetime | None = None  # when it was deleted; it can be restored
    box: tuple[float, float, float, float] | None = None  # a detector's box (image px): its target


def default_url() -> str:
    url = os.environ.get(DB_ENV)
    if url:
        return url
    folder = Path(os.environ.get("CNN_LENS_CACHE", Path.home() / ".cache" / "cnn_lens"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'reviews.db'}"


class ReviewStore:
    """Create, read, filter, edit, delete and restore reviews. Deleting keeps a review, marked
    deleted, so it can be restored; ``readonly`` (``CNN_LENS_READONLY=1``) refuses every change.
    Safe to share between threads: every call has its own session."""

    def __init__(self, url: str | None = None, readonly: bool | None = None) -> None:
        self.url = url or default_url()
        self.readonly = (os.environ.get(READONLY_ENV, "") == "1") if readonly is None \
            else readonly
        self.engine = _engine(self.url)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _writable(self) -> None:
        if self.readonly:
            raise ReviewError(READONLY)

    def add(self, review: Review) -> Review:
        """Store ``review``; if the same review (same ``fingerprint``) is stored already, that
        one is returned and nothing is added: a second click on "Save" makes no duplicate,
        also when two clicks race. Saving a deleted review again restores it."""
        self._writable()
        review = _checked(review)
        row = ReviewRow()
        _fill(row, review)
        row.created = row.updated = _now()
        with self._session() as session:
            existing = session.scalar(select(ReviewRow).where(
                ReviewRow.fingerprint == row.fingerprint))
            if existing is not None:
                if existing.deleted is not None:
                    existing.deleted, existing.updated = None, _now()
                    session.commit()
                return _review(existing)
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # the same review committed meanwhile by another click
                session.rollback()
                return _review(session.scalars(select(ReviewRow).where(
                    ReviewRow.fingerprint == row.fingerprint)).one())
            return _review(row)

    def get(self, review_id: int) -> Review:
        """A review that is not deleted."""
        with self._session() as session:
            row = session.get(ReviewRow, review_id)
            if row is None:
                raise ReviewError(f"There is no review {review_id}.")
            if row.deleted is not None:
                raise ReviewError(f"There is no review {review_id} any more: it was deleted "
                                  "(the Reviews page can restore it).")
            return _review(row)

    def update(self, review_id: int, **changes) -> Review:
        self._writable()
        with self._session() as session:
            row = session.get(ReviewRow, review_id)
            if row is None or row.deleted is not None:
                raise ReviewError(f"There is no review {review_id} (deleted meanwhile?).")
            merged = _checked(Review(**{**_review(row).__dict__, **changes}))
            if fingerprint(merged) == row.fingerprint:
                return _review(row)  # nothing changed
            _fill(row, merged)
            row.updated = _now()
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                twin = session.scalars(select(ReviewRow.id).where(
                    ReviewRow.fingerprint == fingerprint(merged))).first()
                raise ReviewError(f"Review #{twin} says exactly this already.") from None
            return _review(row)

    def delete(self, review_id: int) -> None:
        """Mark the review deleted (``restore`` undoes it)."""
        self._mark(review_id, _now())

    def restore(self, review_id: int) -> None:
        self._mark(review_id, None)

    def _mark(self, review_id: int, deleted: datetime | None) -> None:
        self._writable()
        with self._session() as session:
            row = session.get(ReviewRow, review_id)
            if row is not None and (row.deleted is None) != (deleted is None):
                row.deleted = deleted
                session.commit()

    def find(self, backbone: str | None = None, verdict: str | None = None,
             author: str | None = None, text: str | None = None, limit: int = 500,
             deleted: bool = False) -> list[Review]:
        """Newest first; ``text`` matches the note, the class, the author or the method;
        ``deleted``: the deleted reviews instead of the others."""
        query = select(ReviewRow).order_by(ReviewRow.created.desc(), ReviewRow.id.desc())
        query = query.where(ReviewRow.deleted.is_not(None) if deleted
                            else ReviewRow.deleted.is_(None))
        if backbone:
            query = query.where(ReviewRow.backbone == backbone)
        if verdict:
            query = query.where(ReviewRow.verdict == verdict)
        if author:
            query = query.where(func.lower(ReviewRow.author) == author.strip().lower())
        if text:
            pattern = f"%{text.strip().lower()}%"
            query = query.where(or_(*(func.lower(column).like(pattern) for column in (
                ReviewRow.note, ReviewRow.target_name, ReviewRow.author, ReviewRow.method))))
        with self._session() as session:
            return [_review(row) for row in session.scalars(query.limit(limit))]

    def authors(self) -> list[str]:
        with self._session() as session:
            return sorted(set(session.scalars(select(ReviewRow.author).where(
                ReviewRow.deleted.is_(None)))))

    def count(self, deleted: bool = False) -> int:
        """How many reviews there are (``deleted``: how many were deleted)."""
        with self._session() as session:
            return int(session.scalar(select(func.count(ReviewRow.id)).where(
                ReviewRow.deleted.is_not(None) if deleted else ReviewRow.deleted.is_(None))))

    def _session(self) -> Session:
        return self._sessions()


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _checked(review: Review) -> Review:
    author = review.author.strip()
    if not author:
        raise ReviewError("Say who you are: the author's name is empty.")
    if len(author) > MAX_AUTHOR:
        raise ReviewError(f"The author's name is longer than {MAX_AUTHOR} characters.")
    if review.verdict not in VERDICTS:
        raise ReviewError(f"The verdict is one of: {', '.join(VERDICTS)}.")
    if len(review.note) > MAX_NOTE:
        raise ReviewError(f"The note is longer than {MAX_NOTE} characters.")
    box = review.box
    if box is not None:
        try:
            box = tuple(round(float(v), 1) for v in box)
        except (TypeError, ValueError):
            box = ()
        if len(box) != 4 or not all(math.isfinite(v) for v in box) \
                or not (box[2] > box[0] and box[3] > box[1]):
            raise ReviewError("A review's box is four numbers (x0, y0, x1, y1) with x1 > x0 and "
                              "y1 > y0.")
    return Review(**{**review.__dict__, "author": author, "box": box})


_SAID = ("author", "verdict", "note", "link", "page", "backbone", "weights", "image_hash",
         "method", "target")


def fingerprint(review: Review) -> str:
    """Who said what about which view: two reviews with the same fingerprint are one review."""
    said = [review.author.strip().lower(), *(getattr(review, name) for name in _SAID[1:])]
    if review.box is not None:  # a box's review (reviews without one keep their fingerprints)
        said.append([round(float(v), 1) for v in review.box])
    return hashlib.sha256(json.dumps(said).encode()).hexdigest()


def _fill(row: ReviewRow, review: Review) -> None:
    for name in ("author", "verdict", "note", "link", "backbone", "weights", "image_hash",
                 "method", "target", "target_name", "page", "thumbnail"):
        setattr(row, name, getattr(review, name))
    row.scores = json.dumps(review.scores, sort_keys=True)
    row.box = None if review.box is None else json.dumps(list(review.box))
    row.fingerprint = fingerprint(review)


def _review(row: ReviewRow) -> Review:
    return Review(row.author, row.verdict, row.note, row.link, row.backbone, row.weights,
                  row.image_hash, row.method, row.target, row.target_name, row.page,
                  row.thumbnail or b"", json.loads(row.scores or "{}"), row.id,
                  _utc(row.created), _utc(row.updated), _utc(row.deleted),
                  tuple(json.loads(row.box)) if row.box else None)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
