"""The pose region finder in the service: layers out of frame get no query and the response says why;
the fallbacks are recorded in ``degraded``, ``region_source`` and the timings."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.serving.conftest import b64


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def pose_client(make_client, pose_models_dir):
    return lambda **overrides: make_client(None, region_finder="pose", pose_models_dir=pose_models_dir, **overrides)


def _search(client, data: bytes, layers: list[str], **params) -> dict:
    body = {"image_base64": b64(data), "market": "US", "gender": "women", "k": 5, "layers": layers, "rerank": "off", **params}
    resp = client.post("/v1/looks/search", json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_out_of_frame_layers_are_skipped_with_the_reason(pose_client):
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    body = _search(pose_client(), _png(photo), ["topwear", "bottomwear", "footwear"], rerank="local")
    assert body["region_source"] == "pose" and body["degraded"] == []
    assert [layer["layer"] for layer in body["layers"]] == ["topwear"]
    x0, y0, x1, y1 = body["layers"][0]["region"]
    assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
    reasons = {item["layer"]: item["reason"] for item in body["not_in_look"]}
    assert set(reasons) == {"bottomwear", "footwear"}
    assert all(reason.startswith("out of frame: ") for reason in reasons.values())
    assert body["timings_ms"]["region_pose"] > 0 and body["rerank"] == "local"


def test_a_sample_look_is_read_from_its_pose(pose_client, look):
    _, data, truth = look
    layers = sorted(truth["products"])
    body = _search(pose_client(), data, layers, market=truth["market"], gender=truth["gender"])
    assert body["region_source"] == "pose" and body["not_in_look"] == [] and body["degraded"] == []
    assert sorted(layer["layer"] for layer in body["layers"]) == layers
    assert all(layer["products"] and layer["region"] for layer in body["layers"])


def test_no_person_falls_back_to_the_layout_and_says_so(pose_client):
    blank = Image.new("RGB", (384, 640), (200, 220, 240))
    body = _search(pose_client(), _png(blank), ["topwear", "footwear"])
    assert body["region_source"] == "layout"
    assert [note.split(":")[0] for note in body["degraded"]] == ["regions_layout"]
    assert {"region_pose", "region_person_mask"} <= set(body["timings_ms"])
    assert sorted(layer["layer"] for layer in body["layers"]) == ["footwear", "topwear"]


def test_a_damaged_model_file_stops_the_engine_with_its_name(make_client, pose_models_dir, tmp_path):
    import shutil

    from looksync.search.pose.models import PoseModelError, wheel_dir

    cache = tmp_path / "cache"
    shutil.copytree(pose_models_dir, cache)
    (wheel_dir(cache) / "pose_detection.tflite").write_bytes(b"\0" * 64)
    with pytest.raises(PoseModelError, match=r"pose_detection\.tflite: sha256 mismatch"):
        make_client(None, region_finder="pose", pose_models_dir=cache)
