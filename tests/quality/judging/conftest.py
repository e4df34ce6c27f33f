"""Judging fixtures: a ratings store on a fresh SQLite file and one on real PostgreSQL, in a schema
named for this run and dropped afterwards, so parallel runs never see each other's rows."""

from __future__ import annotations

import os
import uuid

import pytest

from looksync.quality.judging import RatingStore

# not LOOKSYNC_*: the autouse fixture clears those, and this names the test database, not a setting
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def sqlite_store(tmp_path):
    store = RatingStore(f"sqlite:///{tmp_path / 'judging' / 'ratings.sqlite3'}")
    yield store
    store.close()


@pytest.fixture
def postgres_schema() -> str:
    return f"judging_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_store(postgres_schema):
    import sqlalchemy as sa

    try:
        with sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)).connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # a missing server is a failed test with the fix, never a silent skip
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc}); start it or set TEST_POSTGRES_URL")
    store = RatingStore(POSTGRES_URL, schema=postgres_schema)
    yield store
    store.drop()
    store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")
