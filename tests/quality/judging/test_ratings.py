"""Validation of submitted ratings: every problem named, nothing half-accepted."""

from __future__ import annotations

import pytest

from looksync.quality.judging import InvalidRating, parse_submission
from tests.quality.judging.factories import submission


def test_a_valid_submission_takes_the_shared_fields():
    ratings = parse_submission(submission(3), layers={"topwear", "footwear"})
    assert [r.product_id for r in ratings] == ["vendor-0", "vendor-1", "vendor-2"]
    assert {r.judge_id for r in ratings} == {"ana"}
    assert ratings[1].scores["sleeve"] is None and ratings[0].scores["sleeve"] == 2
    assert ratings[0].look_key == "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scores": {"overall": 6}}, "ratings[0].scores.overall: must be an integer 1-5, got 6"),
        ({"scores": {"overall": 0}}, "got 0"),
        ({"scores": {"overall": True}}, "got True"),
        ({"scores": {"overall": "4"}}, "got '4'"),
        ({"scores": {"overall": 3.5}}, "got 3.5"),
        ({"scores": {"fit": 3}}, "ratings[0].scores.overall: required"),
        ({"scores": {"overall": 3, "drape": 2}}, "unknown criteria ['drape']"),
        ({"scores": None}, "ratings[0].scores: required"),
        ({"layer": "cape"}, "'cape' is not a layer"),
        ({"layer": ""}, "ratings[0].layer: required"),
        ({"product_id": 12}, "ratings[0].product_id: must be a string"),
        ({"rank": 0}, "ratings[0].rank: must be a positive integer"),
        ({"colour_score": 3}, "unknown field(s) ['colour_score']"),
    ],
)
def test_bad_ratings_are_refused_with_the_field_and_value(change, message):
    body = submission(2)
    body["ratings"][0] = {**body["ratings"][0], **change}
    with pytest.raises(InvalidRating) as err:
        parse_submission(body, layers={"topwear", "footwear"})
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("shared", "message"),
    [
        ({"judge_id": None}, "ratings[0].judge_id: required"),
        ({"look_id": None, "look_sha256": None}, "look_id / look_sha256: at least one is required"),
        ({"look_sha256": "XYZ"}, "look_sha256: must be 64 lowercase hex digits"),
        ({"model_id": ""}, "ratings[0].model_id: required"),
        ({"ratings": []}, "ratings: required, a non-empty list"),
        ({"extra": 1}, "body: unknown field(s) ['extra']"),
        ({"judge_id": "x" * 129}, "judge_id: at most 128 characters"),
    ],
)
def test_bad_shared_fields_are_refused(shared, message):
    with pytest.raises(InvalidRating) as err:
        parse_submission(submission(2, **shared))
    assert message in str(err.value)


def test_every_problem_is_listed_at_once():
    body = submission(3)
    body["ratings"][0]["scores"]["overall"] = 9
    body["ratings"][2]["scores"]["fit"] = -1
    with pytest.raises(InvalidRating) as err:
        parse_submission(body)
    assert err.value.problems == [
        "ratings[0].scores.overall: must be an integer 1-5, got 9",
        "ratings[2].scores.fit: must be an integer 1-5, got -1",
    ]


def test_not_an_object():
    with pytest.raises(InvalidRating, match="body: must be a JSON object, got list"):
        parse_submission([1, 2])
