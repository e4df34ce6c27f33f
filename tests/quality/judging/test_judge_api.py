"""The judging endpoints through the Flask app: status codes, messages, auth, and the report."""

from __future__ import annotations

import pytest

from looksync.quality.judging import RatingStore
from tests.quality.judging.factories import submission
from tests.quality.judging.service import judging_app

KEY = "judge-key"


@pytest.fixture
def client(built_catalog, tmp_path):
    return judging_app(built_catalog, tmp_path).test_client()


def test_submit_then_report(client, tmp_path):
    resp = client.post("/v1/judgments", json=submission(3))
    assert resp.status_code == 201, resp.get_json()
    ids = resp.get_json()["ids"]
    assert len(ids) == 3
    stored = RatingStore(f"sqlite:///{tmp_path / 'ratings.sqlite3'}").ratings()
    assert [r.id for r in stored] == ids and stored[0].index_version == "v20260101"
    report = client.get("/v1/judgments/report").get_json()
    (model,) = report["models"]
    assert model["model_id"] == "LookSync-Tiny:random" and model["n"] == 3
    assert model["criteria"]["overall"]["mean"] == pytest.approx((3 + 4 + 5) / 3)
    assert client.get("/v1/judgments/report?model_id=other").get_json()["models"] == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({**submission(1), "ratings": [{"layer": "topwear", "product_id": "p", "scores": {"overall": 6}}]}, 400,
         "ratings[0].scores.overall: must be an integer 1-5, got 6"),
        ({**submission(1), "ratings": [{"layer": "cape", "product_id": "p", "scores": {"overall": 3}}]}, 400,
         "'cape' is not a layer"),
        ([1, 2], 400, "body: must be a JSON object"),
    ],
)  # fmt: skip
def test_bad_submissions_are_4xx_with_the_reason(client, body, status, message):
    resp = client.post("/v1/judgments", json=body)
    assert resp.status_code == status
    assert resp.get_json()["error"]["code"] == "invalid_rating"
    assert message in resp.get_json()["error"]["message"]
    assert client.get("/v1/judgments/report").get_json()["n_ratings"] == 0


def test_not_json(client):
    resp = client.post("/v1/judgments", data="overall=5", content_type="text/plain")
    assert resp.status_code == 415 and resp.get_json()["error"]["code"] == "unsupported_media_type"


def test_unreachable_judging_database_is_503_and_search_still_starts(built_catalog, tmp_path):
    app = judging_app(built_catalog, tmp_path, judging_db_url="postgresql://postgres@127.0.0.1:1/test")
    client = app.test_client()
    resp = client.post("/v1/judgments", json=submission(1))
    assert resp.status_code == 503
    assert resp.get_json()["error"]["code"] == "judging_db_unavailable"
    assert "127.0.0.1:1/test" in resp.get_json()["error"]["message"]
    assert client.get("/healthz").status_code == 200


def test_sample_looks(client, built_catalog):
    looks = client.get("/v1/sample-looks").get_json()["looks"]
    assert [look["look_id"] for look in looks] == sorted(built_catalog.ground_truth)
    resp = client.get(looks[0]["url"])
    assert resp.status_code == 200 and resp.mimetype == "image/png" and resp.data[:4] == b"\x89PNG"
    for bad in ("..%2Fmanifest", "nope", ".hidden"):
        assert client.get(f"/v1/sample-looks/{bad}").status_code == 404


def test_no_looks_directory_says_how_to_set_one(built_catalog, tmp_path):
    client = judging_app(built_catalog, tmp_path, judging_looks_dir=tmp_path / "missing").test_client()
    body = client.get("/v1/sample-looks").get_json()
    assert body["looks"] == [] and "LOOKSYNC_JUDGING_LOOKS_DIR" in body["note"]


def test_pages_are_open_and_data_needs_the_key(built_catalog, tmp_path):
    client = judging_app(built_catalog, tmp_path, api_keys=[KEY]).test_client()
    for page in ("/demo", "/judge", "/judge/report", "/static/looksync.js", "/static/looksync.css"):
        assert client.get(page).status_code == 200, page
    for method, path in (("get", "/v1/judgments/report"), ("post", "/v1/judgments"), ("get", "/v1/sample-looks"),
                         ("get", "/v1/sample-looks/look-001")):  # fmt: skip
        assert getattr(client, method)(path).status_code == 401, path
    resp = client.post("/v1/judgments", json=submission(1), headers={"X-API-Key": KEY})
    assert resp.status_code == 201
    assert client.get("/v1/judgments/report", headers={"X-API-Key": KEY}).get_json()["n_ratings"] == 1


def test_pages_carry_no_data(client):
    client.post("/v1/judgments", json=submission(1, model_id="secret-model"))
    for page in ("/judge", "/judge/report", "/demo"):
        assert b"secret-model" not in client.get(page).data
