"""The ratings store: one table on a real database, SQLite by default, PostgreSQL when configured.

SQLAlchemy Core (already installed with Airflow) keeps one table definition and one set of queries
for both databases; psycopg 3 is the PostgreSQL driver. The schema is created idempotently on open.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from looksync.quality.judging.ratings import CRITERIA, SCORE_MAX, SCORE_MIN, Rating

if TYPE_CHECKING:
    from looksync.settings import Settings

log = logging.getLogger(__name__)

TABLE = "judging_ratings"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class JudgingStoreError(RuntimeError):
    """The ratings database cannot be reached or written; the message names it (without password)."""


def database_url(settings: Settings) -> str:
    """``LOOKSYNC_JUDGING_DB_URL`` when set, else a SQLite file under the data directory."""
    if settings.judging_db_url:
        return settings.judging_db_url
    return f"sqlite:///{(settings.data_dir / 'judging' / 'ratings.sqlite3').resolve()}"


def _engine_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's psycopg2 default
    if not (parsed.drivername.startswith("sqlite") or parsed.drivername.startswith("postgresql")):
        raise JudgingStoreError(f"{url.split('@')[-1]}: unsupported database; use sqlite:///<file> or postgresql://...")
    return parsed


def _table(metadata: sa.MetaData, name: str) -> sa.Table:
    checks = [
        sa.CheckConstraint(f"{c} IS NULL OR ({c} BETWEEN {SCORE_MIN} AND {SCORE_MAX})", name=f"{name}_{c}_range")
        for c in CRITERIA
    ]
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("judge_id", sa.String(128), nullable=False),
        sa.Column("look_id", sa.String(200)),
        sa.Column("look_sha256", sa.String(64)),
        sa.Column("layer", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(200), nullable=False),
        sa.Column("rank", sa.Integer),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("index_version", sa.String(200)),
        sa.Column("query_text", sa.Text),
        *(sa.Column(c, sa.SmallInteger, nullable=c != "overall") for c in CRITERIA),
        sa.CheckConstraint("look_id IS NOT NULL OR look_sha256 IS NOT NULL", name=f"{name}_look_given"),
        *checks,
        sa.Index(f"{name}_model_idx", "model_id", "layer"),
    )


class RatingStore:
    """Ratings on SQLite or PostgreSQL. ``schema`` (PostgreSQL) or ``table`` let tests and parallel
    deployments keep their ratings apart; both must be plain lower-case identifiers."""

    def __init__(self, url: str, *, schema: str | None = None, table: str = TABLE):
        for label, value in (("schema", schema), ("table", table)):
            if value is not None and not _IDENTIFIER.match(value):
                raise JudgingStoreError(f"{label} {value!r}: use lower-case letters, digits and _ (max 63)")
        engine_url = _engine_url(url)
        self.is_sqlite = engine_url.drivername.startswith("sqlite")
        if self.is_sqlite and schema:
            raise JudgingStoreError("a schema is only supported on PostgreSQL; use table= on SQLite")
        if self.is_sqlite and engine_url.database and engine_url.database != ":memory:":
            Path(engine_url.database).parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.display_url = engine_url.render_as_string(hide_password=True)
        self.engine = sa.create_engine(engine_url, pool_pre_ping=True)
        self.table = _table(sa.MetaData(schema=schema), table)
        self.create_schema()

    @classmethod
    def from_settings(cls, settings: Settings) -> RatingStore:
        return cls(database_url(settings))

    def _fail(self, action: str, exc: SQLAlchemyError) -> JudgingStoreError:
        log.error("judging store: %s failed on %s: %s", action, self.display_url, exc)
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return JudgingStoreError(f"ratings database {self.display_url}: {action} failed: {detail}")

    def create_schema(self) -> None:
        """Create the schema (PostgreSQL) and the table if missing; safe to call any number of times."""
        try:
            with self.engine.begin() as conn:
                if self.schema:
                    conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
                self.table.metadata.create_all(conn, checkfirst=True)
        except SQLAlchemyError as exc:
            raise self._fail("creating the table", exc) from exc

    def add(self, ratings: Sequence[Rating]) -> list[int]:
        """Store ratings in one transaction (all or none); returns their ids in order."""
        now = datetime.now(UTC)
        ids = []
        try:
            with self.engine.begin() as conn:
                for rating in ratings:
                    row = {
                        "created_at": now, "judge_id": rating.judge_id, "look_id": rating.look_id,
                        "look_sha256": rating.look_sha256, "layer": rating.layer, "product_id": rating.product_id,
                        "rank": rating.rank, "model_id": rating.model_id, "index_version": rating.index_version,
                        "query_text": rating.query_text, **{c: rating.scores.get(c) for c in CRITERIA},
                    }  # fmt: skip
                    result = conn.execute(self.table.insert().values(**row).returning(self.table.c.id))
                    ids.append(int(result.scalar_one()))
        except SQLAlchemyError as exc:
            raise self._fail("storing ratings", exc) from exc
        return ids

    def ratings(self, *, model_id: str | None = None, judge_id: str | None = None) -> list[Rating]:
        """Stored ratings, oldest first (ties by id), optionally of one model or one judge."""
        t = self.table
        query = sa.select(t).order_by(t.c.created_at, t.c.id)
        if model_id is not None:
            query = query.where(t.c.model_id == model_id)
        if judge_id is not None:
            query = query.where(t.c.judge_id == judge_id)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise self._fail("reading ratings", exc) from exc
        return [_rating(row) for row in rows]

    def drop(self) -> None:
        """Drop the table (and the schema, when one was given). For tests and teardown only."""
        with self.engine.begin() as conn:
            self.table.drop(conn, checkfirst=True)
            if self.schema:
                conn.execute(sa.schema.DropSchema(self.schema, cascade=True, if_exists=True))

    def close(self) -> None:
        self.engine.dispose()


def _rating(row) -> Rating:
    created = row["created_at"]
    if created is not None and created.tzinfo is None:  # SQLite keeps no zone; everything stored is UTC
        created = created.replace(tzinfo=UTC)
    return Rating(
        id=row["id"], created_at=created, judge_id=row["judge_id"], look_id=row["look_id"],
        look_sha256=row["look_sha256"], layer=row["layer"], product_id=row["product_id"], rank=row["rank"],
        model_id=row["model_id"], index_version=row["index_version"], query_text=row["query_text"],
        scores={c: row[c] for c in CRITERIA},
    )  # fmt: skip
