"""BlazePose's model files: fetched from the pinned wheel, a directory or S3, always checked against the
recorded sha256; a missing or damaged file is an error naming it, never a silent fallback."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from embeddings.errors import WeightsError
from looksync.search.pose.models import PoseModelError, recorded, resolve_pose_models, wheel_dir


def _copy_cache(pose_models_dir, tmp_path):
    shutil.copytree(pose_models_dir, tmp_path / "cache")
    return tmp_path / "cache"


def test_the_wheel_members_match_the_recorded_sums(pose_models_dir):
    package, files = recorded()
    assert package == "mediapipe==0.10.21"
    paths = resolve_pose_models("pypi", pose_models_dir, fetch=False)
    for role, f in files.items():
        path = getattr(paths, role)
        assert path.name == f.name and path.parent == wheel_dir(pose_models_dir)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256
    assert sorted(p.name for p in wheel_dir(pose_models_dir).iterdir()) == sorted(f.name for f in files.values())


def test_a_damaged_cached_file_is_an_error_naming_it(pose_models_dir, tmp_path):
    cache = _copy_cache(pose_models_dir, tmp_path)
    damaged = wheel_dir(cache) / "pose_landmark_full.tflite"
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    actual = hashlib.sha256(damaged.read_bytes()).hexdigest()
    expected = recorded()[1]["landmarks"].sha256
    with pytest.raises(PoseModelError) as err:
        resolve_pose_models("pypi", cache)
    message = str(err.value)
    assert str(damaged) in message and expected in message and actual in message and "--force" in message


def test_a_missing_file_without_fetching_is_an_error(pose_models_dir, tmp_path):
    cache = _copy_cache(pose_models_dir, tmp_path)
    (wheel_dir(cache) / "pose_detection.tflite").unlink()
    with pytest.raises(PoseModelError, match=r"pose_detection\.tflite: pose model file not found \(expected sha256 9ba9dd3d"):
        resolve_pose_models("pypi", cache, fetch=False)


def test_models_fetch_force_replaces_a_damaged_file(pose_models_dir, tmp_path):
    from looksync.cli import main

    cache = _copy_cache(pose_models_dir, tmp_path)
    damaged = wheel_dir(cache) / "selfie_segmentation.tflite"
    damaged.write_bytes(b"not a model")
    env = {"LOOKSYNC_POSE_MODELS_DIR": str(cache)}
    failed = CliRunner().invoke(main, ["models", "fetch"], env=env)
    assert failed.exit_code != 0 and "sha256 mismatch" in failed.output and str(damaged) in failed.output
    fixed = CliRunner().invoke(main, ["models", "fetch", "--force"], env=env)
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.output)["segmentation"] == str(damaged)
    assert hashlib.sha256(damaged.read_bytes()).hexdigest() == recorded()[1]["segmentation"].sha256


def test_a_directory_source_is_checked_too(pose_models_dir, tmp_path):
    directory = tmp_path / "models"
    shutil.copytree(wheel_dir(pose_models_dir), directory)
    assert resolve_pose_models(str(directory)).detector == directory / "pose_detection.tflite"
    (directory / "pose_detection.tflite").write_bytes((directory / "selfie_segmentation.tflite").read_bytes())
    with pytest.raises(PoseModelError, match=r"pose_detection\.tflite: sha256 mismatch \(expected 9ba9dd3d.*got 9ee168ec"):
        resolve_pose_models(str(directory))


def test_an_s3_source_goes_through_the_clip_weights_code(pose_models_dir, tmp_path, s3_bucket, s3_endpoint):
    client, bucket = s3_bucket
    for path in wheel_dir(pose_models_dir).iterdir():
        client.upload_file(str(path), bucket, f"models/blazepose/{path.name}")
    paths = resolve_pose_models(f"s3://{bucket}/models/blazepose", tmp_path / "cache", s3_endpoint_url=s3_endpoint)
    assert paths.landmarks == tmp_path / "cache" / "s3" / bucket / "models/blazepose/pose_landmark_full.tflite"
    assert paths.landmarks.read_bytes() == (wheel_dir(pose_models_dir) / "pose_landmark_full.tflite").read_bytes()
    client.put_object(Bucket=bucket, Key="models/other/pose_detection.tflite", Body=b"not a model")
    with pytest.raises(WeightsError, match=r"s3://.*/models/other/pose_detection\.tflite#sha256=9ba9dd3d.*: sha256 mismatch \(expected 9ba9dd3d"):
        resolve_pose_models(f"s3://{bucket}/models/other", tmp_path / "cache2", s3_endpoint_url=s3_endpoint)
