"""Fixtures that build real things: a tiny CLIP checkpoint saved to disk and loaded the way users load
one, and an S3 API (moto's server) on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from embeddings import ClipEncoder, load_encoder, save_random_checkpoint

TINY = "LookSync-Tiny"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_checkpoint(TINY, tmp_path_factory.mktemp("ckpt") / "tiny-seed0.pt", seed=0)


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_checkpoint(TINY, tmp_path_factory.mktemp("ckpt") / "tiny-seed1.pt", seed=1)


@pytest.fixture(scope="session")
def encoder(tiny_checkpoint: Path) -> ClipEncoder:
    return load_encoder(TINY, str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    env = pytest.MonkeyPatch()
    # boto3's credential chain needs something; moto accepts any key
    env.setenv("AWS_ACCESS_KEY_ID", "looksync-test")
    env.setenv("AWS_SECRET_ACCESS_KEY", "looksync-test")
    env.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        env.undo()


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest):
    """A fresh bucket on the loopback S3 server; yields (boto3 client, bucket name)."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = ("models-" + re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()))[:60].rstrip("-")
    client.create_bucket(Bucket=bucket)
    return client, bucket
