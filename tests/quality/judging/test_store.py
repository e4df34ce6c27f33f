"""Ratings saved and read back on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from looksync.quality.judging import JudgingStoreError, RatingStore, database_url, parse_submission
from looksync.quality.judging.ratings import CRITERIA
from looksync.settings import load_settings
from tests.quality.judging.factories import submission


def test_round_trip(store):
    ratings = parse_submission(submission(3))
    ids = store.add(ratings)
    assert len(ids) == 3 and ids == sorted(ids)
    back = store.ratings()
    assert [r.id for r in back] == ids
    assert back == ratings and all(r.created_at.tzinfo is not None for r in back)  # equal apart from id/time
    assert back[1].scores["sleeve"] is None
    assert store.ratings(model_id="other") == []
    assert [r.id for r in store.ratings(judge_id="ana")] == ids


def test_schema_creation_is_idempotent(store):
    store.add(parse_submission(submission(1)))
    store.create_schema()
    again = RatingStore(store.engine.url.render_as_string(hide_password=False), schema=store.schema)
    try:
        assert len(again.ratings()) == 1
    finally:
        again.close()


def test_the_database_refuses_out_of_range_scores_too(store):
    row = {"created_at": sa.func.now(), "judge_id": "j", "look_id": "l", "layer": "topwear", "product_id": "p",
           "model_id": "m", **{c: 3 for c in CRITERIA}}  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(store.table.insert().values(**{**row, "fit": 7}))
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(store.table.insert().values(**{**row, "look_id": None}))
    assert store.ratings() == []


def test_a_submission_is_stored_whole_or_not_at_all(store):
    ratings = parse_submission(submission(2))
    # bypass validation for the second rating: the database's check must roll back the first as well
    broken = ratings[1].__class__(**{**ratings[1].__dict__, "scores": {**ratings[1].scores, "overall": 9}})
    with pytest.raises(JudgingStoreError, match="storing ratings failed"):
        store.add([ratings[0], broken])
    assert store.ratings() == []


def test_unreachable_database_fails_loudly_naming_it():
    with pytest.raises(JudgingStoreError, match=r"postgresql\+psycopg://judge:\*\*\*@127.0.0.1:1/test"):
        RatingStore("postgresql://judge:secret@127.0.0.1:1/test")


def test_default_database_is_sqlite_under_the_data_dir(tmp_path):
    settings = load_settings(data_dir=tmp_path)
    assert database_url(settings) == f"sqlite:///{tmp_path.resolve()}/judging/ratings.sqlite3"
    store = RatingStore.from_settings(settings)
    store.add(parse_submission(submission(1)))
    store.close()
    assert (tmp_path / "judging" / "ratings.sqlite3").is_file()
    url = "postgresql://postgres@127.0.0.1:5432/test"
    assert database_url(load_settings(data_dir=tmp_path, judging_db_url=url)) == url


def test_bad_identifiers_and_urls_are_refused():
    with pytest.raises(JudgingStoreError, match="schema 'x; drop'"):
        RatingStore("sqlite://", schema="x; drop")
    with pytest.raises(JudgingStoreError, match="unsupported database"):
        RatingStore("mysql://u@h/db")
