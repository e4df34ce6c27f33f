"""s3:// weights against a real S3 API (moto's server on loopback): download once, verify, cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from embeddings import ClipEncoder, WeightsError, load_encoder, load_encoder_from_settings
from looksync.settings import load_settings

from .factories import noise_images

TINY = "LookSync-Tiny"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pinned_sha256_downloads_once_then_uses_the_cache(
    s3_bucket, s3_endpoint: str, tiny_checkpoint: Path, encoder: ClipEncoder, tmp_path: Path
):
    client, bucket = s3_bucket
    client.upload_file(str(tiny_checkpoint), bucket, "clip/tiny.pt")
    uri = f"s3://{bucket}/clip/tiny.pt#sha256={_sha256(tiny_checkpoint)}"

    loaded = load_encoder(TINY, uri, device="cpu", cache_dir=tmp_path, s3_endpoint_url=s3_endpoint)
    cached = tmp_path / "s3" / bucket / "clip" / "tiny.pt"
    assert cached.read_bytes() == tiny_checkpoint.read_bytes()
    assert loaded.model_id == encoder.model_id  # same bytes, same id, whichever source they came from
    images = noise_images(4)
    np.testing.assert_array_equal(loaded.encode_images(images), encoder.encode_images(images))

    client.delete_object(Bucket=bucket, Key="clip/tiny.pt")
    again = load_encoder(TINY, uri, device="cpu", cache_dir=tmp_path, s3_endpoint_url=s3_endpoint)
    assert again.model_id == encoder.model_id
    assert sorted(p.name for p in cached.parent.iterdir()) == ["tiny.pt"]


def test_sidecar_sha256_object_is_used_and_a_replaced_checkpoint_is_noticed(
    s3_bucket, s3_endpoint: str, tiny_checkpoint: Path, other_checkpoint: Path, tmp_path: Path
):
    client, bucket = s3_bucket
    client.upload_file(str(tiny_checkpoint), bucket, "tiny.pt")
    client.put_object(Bucket=bucket, Key="tiny.pt.sha256", Body=f"{_sha256(tiny_checkpoint)}  tiny.pt\n".encode())
    uri = f"s3://{bucket}/tiny.pt"
    settings = load_settings(
        clip_model=TINY, clip_weights=uri, clip_cache_dir=tmp_path, device="cpu", s3_endpoint_url=s3_endpoint
    )
    first = load_encoder_from_settings(settings)
    assert first.model_id == f"{TINY}@{_sha256(tiny_checkpoint)[:12]}"

    client.delete_object(Bucket=bucket, Key="tiny.pt")  # the cached copy still matches the sidecar
    assert load_encoder_from_settings(settings).model_id == first.model_id

    client.upload_file(str(other_checkpoint), bucket, "tiny.pt")
    client.put_object(Bucket=bucket, Key="tiny.pt.sha256", Body=_sha256(other_checkpoint).encode())
    replaced = load_encoder_from_settings(settings)
    assert replaced.model_id == f"{TINY}@{_sha256(other_checkpoint)[:12]}"
    assert (tmp_path / "s3" / bucket / "tiny.pt").read_bytes() == other_checkpoint.read_bytes()


def test_sha256_mismatch_names_expected_and_got_and_leaves_nothing_cached(
    s3_bucket, s3_endpoint: str, tiny_checkpoint: Path, tmp_path: Path
):
    client, bucket = s3_bucket
    client.upload_file(str(tiny_checkpoint), bucket, "tiny.pt")
    wrong = "ab" * 32
    uri = f"s3://{bucket}/tiny.pt#sha256={wrong}"
    with pytest.raises(WeightsError) as err:
        load_encoder(TINY, uri, device="cpu", cache_dir=tmp_path, s3_endpoint_url=s3_endpoint)
    assert str(err.value) == f"{uri}: sha256 mismatch (expected {wrong}, got {_sha256(tiny_checkpoint)})"
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_missing_object_and_missing_checksum_are_clear(
    s3_bucket, s3_endpoint: str, tiny_checkpoint: Path, tmp_path: Path
):
    client, bucket = s3_bucket
    missing = f"s3://{bucket}/nope.pt#sha256={'0' * 64}"
    with pytest.raises(WeightsError, match=rf"^{missing}: download failed: .*404"):
        load_encoder(TINY, missing, device="cpu", cache_dir=tmp_path, s3_endpoint_url=s3_endpoint)

    client.upload_file(str(tiny_checkpoint), bucket, "unsigned.pt")
    with pytest.raises(WeightsError, match=rf"^s3://{bucket}/unsigned.pt: no sha256 to verify against"):
        load_encoder(TINY, f"s3://{bucket}/unsigned.pt", device="cpu", cache_dir=tmp_path, s3_endpoint_url=s3_endpoint)


def test_malformed_s3_uris_are_refused(tmp_path: Path):
    for uri, expected in [
        ("s3://bucket-only", "expected s3://bucket/key"),
        ("s3://b/k.pt#sha256=xyz", "sha256 must be 64 hex digits"),
        ("s3://b/k.pt#md5=abc", "unknown fragment"),
    ]:
        with pytest.raises(WeightsError, match=expected):
            load_encoder(TINY, uri, device="cpu", cache_dir=tmp_path)
