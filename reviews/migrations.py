"""Numbered schema migrations, applied in order on start; ``schema_version`` says how far.

To change the schema: edit ``schema.py`` and append a function here that brings an existing
database from the previous version to the new one (``ALTER TABLE ...``). Never edit one that
has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Integer, MetaData, Table, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from .schema import Base


def _create_reviews(connection: Connection) -> None:
    Base.metadata.create_all(connection)


def _add_fingerprint(connection: Connection) -> None:
    """A unique content fingerprint per review (a database made by migration 1 on a newer
    schema.py has the column already)."""
    columns = {c["name"] for c in inspect(connection).get_columns("reviews")}
    if "fingerprint" not in columns:
        connection.execute(text("ALTER TABLE reviews ADD COLUMN fingerprint VARCHAR(64)"))
    connection.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS ix_reviews_fingerprint "
                            "ON reviews (fingerprint)"))


def _add_deleted(connection: Connection) -> None:
    """Deleting keeps a review, marked with when it was deleted, so that it can be restored."""
    columns = {c["name"] for c in inspect(connection).get_columns("reviews")}
    if "deleted" not in columns:
        kind = "TIMESTAMP WITH TIME ZONE" if connection.dialect.name == "postgresql" else "DATETIME"
        connection.execute(text(f"ALTER TABLE reviews ADD COLUMN deleted {kind}"))
    connection.execute(text("CREATE INDEX IF NOT EXISTS ix_reviews_deleted ON reviews (deleted)"))


def _add_box(connection: Connection) -> None:
    """A review of a detector's box records the box."""
    columns = {c["name"] for c in inspect(connection).get_columns("reviews")}
    if "box" not in columns:
        connection.execute(text("ALTER TABLE reviews ADD COLUMN box VARCHAR(200)"))


MIGRATIONS: list[Callable[[Connection], None]] = [_create_reviews, _add_fingerprint, _add_deleted,
                                                  _add_box]

_meta = MetaData()
_version = Table("schema_version", _meta, Column("version", Integer, nullable=False))


def migrate(engine: Engine) -> int:
    """Run the migrations this database has not seen; returns the schema version."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # replicas starting together take turns
            connection.execute(text("SELECT pg_advisory_xact_lock(726016)"))
        _meta.create_all(connection)
        current = connection.scalar(select(_version.c.version))
        if current is None:
            connection.execute(_version.insert().values(version=0))
            current = 0
        for number, step in enumerate(MIGRATIONS[current:], start=current + 1):
            step(connection)
            connection.execute(_version.update().values(version=number))
        return len(MIGRATIONS)
