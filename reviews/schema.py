"""The database schema (SQLAlchemy declarative). Change it only together with a migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ReviewRow(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    author: Mapped[str] = mapped_column(String(120), index=True)
    verdict: Mapped[str] = mapped_column(String(40), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(Text)
    page: Mapped[str] = mapped_column(String(60), default="Explain")
    backbone: Mapped[str] = mapped_column(String(80), index=True)
    weights: Mapped[str] = mapped_column(String(80))
    image_hash: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(40))
    target: Mapped[int] = mapped_column(Integer)
    target_name: Mapped[str] = mapped_column(String(200))
    thumbnail: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    scores: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    # what the review says about which view (see store.fingerprint): one row per content, so a
    # second click on "Save" cannot store it twice; NULL for rows saved before migration 2
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # when it was deleted (NULL: it was not): a deleted review can be restored (migration 3)
    deleted: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True,
                                                     index=True)
    # a detector's box the review is about, JSON [x0, y0, x1, y1] in the image's pixels (NULL:
    # a class or a slice; migration 4)
    box: Mapped[str | None] = mapped_column(String(200), nullable=True)
