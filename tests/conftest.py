"""Session fixtures that build real things: a sample catalog served over HTTP, a random-weight
checkpoint of a real (tiny) CLIP architecture, an ingested and indexed catalog."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_MODEL = "LookSync-Tiny"
REPO = Path(__file__).resolve().parents[1]

# Settings the tests pin whatever the defaults are. The default region finder is ``auto`` (pose when the
# BlazePose files are in ~/.cache/looksync/models, else layout): what that cache holds on a machine must not
# change what a test sees, so tests read looks with ``layout`` unless they ask for another finder.
PINNED_ENV = {"LOOKSYNC_REGION_FINDER": "layout"}


def pytest_configure(config) -> None:
    os.environ.update(PINNED_ENV)  # before any fixture, session-scoped ones included


def tiny_model_env(data_dir: Path, checkpoint: Path) -> dict[str, str]:
    """LOOKSYNC_* for a run on a tiny random-weight checkpoint, on CPU, fetching sample images from loopback."""
    return {
        "LOOKSYNC_DATA_DIR": str(data_dir),
        "LOOKSYNC_CLIP_MODEL": TINY_MODEL,
        "LOOKSYNC_CLIP_WEIGHTS": str(checkpoint),
        "LOOKSYNC_FETCH_ALLOW_PRIVATE": "true",
        "LOOKSYNC_DEVICE": "cpu",
        **PINNED_ENV,
    }


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """Tests never inherit LOOKSYNC_* from the developer's shell (only the pinned settings are set)."""
    for name in list(os.environ):
        if name.startswith("LOOKSYNC_"):
            monkeypatch.delenv(name)
    for name, value in PINNED_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def unreachable_hub_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine without the model hub, for subprocesses: no LOOKSYNC_* or HF_* variables
    but HF_ENDPOINT on a loopback port where nothing listens and an empty HF_HOME under tmp_path."""
    from tests.factories import closed_loopback_url

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOKSYNC_", "HF_", "TRANSFORMERS_"))}
    env.update({"HF_ENDPOINT": closed_loopback_url(), "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(REPO)})
    return env


@dataclass
class BuiltCatalog:
    root: Path
    manifest: object
    env: dict[str, str]
    settings: object
    encoder: object
    reports: dict
    ground_truth: dict
    faults: list[dict]
    image_server: object  # serves the sample's product images at the feeds' URLs for the whole session


@pytest.fixture(scope="session")
def built_catalog(tmp_path_factory) -> Iterator[BuiltCatalog]:
    """Sample (with planted faults) -> image server -> CLI ingest of every feed -> CLI index build.

    The image server stays up until the session ends: tests that ingest again or show product images use
    it at the URLs the feeds name (re-binding its ephemeral port later could find it taken)."""
    from click.testing import CliRunner

    from embeddings import load_encoder, save_random_checkpoint
    from looksync.cli import main
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample
    from looksync.settings import load_settings

    root = tmp_path_factory.mktemp("catalog")
    sample_dir = root / "sample"
    sample_dir.mkdir()
    checkpoint = save_random_checkpoint(TINY_MODEL, root / "models" / "tiny.pt", seed=3)
    env = tiny_model_env(root / "data", checkpoint)
    server = serve_sample(sample_dir, port=0)
    try:
        manifest = generate_sample(
            sample_dir, size=150, seed=11, fault_rate=0.05, image_base_url=server.url, n_looks=6
        )
        runner = CliRunner()
        reports = {}
        for vendor, feed in manifest.feeds.items():
            result = runner.invoke(main, ["ingest", "--vendor", vendor, "--feed", str(feed)], env=env)
            assert result.exit_code == 0, result.output
            reports[vendor] = json.loads(result.stdout[result.stdout.index("{") :])  # stderr: log lines
        result = CliRunner().invoke(main, ["index", "build"], env=env)
        assert result.exit_code == 0, result.output
        settings = load_settings(**{k.removeprefix("LOOKSYNC_").lower(): v for k, v in env.items()})
        faults = [json.loads(line) for line in Path(manifest.faults_path).read_text().splitlines() if line.strip()]
        yield BuiltCatalog(
            root=root,
            manifest=manifest,
            env=env,
            settings=settings,
            encoder=load_encoder(TINY_MODEL, str(checkpoint), device="cpu"),
            reports=reports,
            ground_truth=json.loads(Path(manifest.ground_truth_path).read_text()),
            faults=faults,
            image_server=server,
        )
    finally:
        server.close()


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
    bucket = ("t-" + re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()))[:60].rstrip("-")
    client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """A temporary AIRFLOW_HOME on SQLite, migrated once per session, with this repo's dags/ and plugins/,
    and the pool made by `looksync airflow setup`; the environment for Airflow subprocesses."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOKSYNC_", "AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": str(REPO),
    })  # fmt: skip
    airflow = str(Path(sys.executable).with_name("airflow"))
    looksync = str(Path(sys.executable).with_name("looksync"))
    # the pool through the command a data engineer runs (docs/airflow.md), not a test-only call
    for cmd in ([airflow, "db", "migrate"], [looksync, "airflow", "setup", "--embedding-slots", "2"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return env


@pytest.fixture(scope="session")
def pose_models_dir(tmp_path_factory) -> Path:
    """BlazePose's model files fetched once per session the way a deployment fetches them: the pinned
    mediapipe wheel through pip from the configured package index, members extracted and checked."""
    from looksync.search.pose.models import resolve_pose_models

    cache = tmp_path_factory.mktemp("pose-models")
    resolve_pose_models("pypi", cache)
    return cache


@pytest.fixture(scope="session")
def blazepose(pose_models_dir):
    from looksync.search.pose import load_blazepose, resolve_pose_models

    return load_blazepose(resolve_pose_models("pypi", pose_models_dir, fetch=False), threads=2)
