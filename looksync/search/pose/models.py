"""BlazePose's model files: where they come from, checked against the sha256 sums recorded in
``blazepose.yaml``, and cached.

Sources (``LOOKSYNC_POSE_MODELS``):

- ``pypi`` (the default): the pinned ``mediapipe`` wheel is downloaded with ``python -m pip download
  --no-deps --only-binary=:all:`` (so the user's pip configuration and index apply), and only the model
  members are extracted into ``<cache_dir>/blazepose/<package>/``. mediapipe is never installed;
- a directory holding the files under their wheel names (``pose_detection.tflite``, ...);
- ``s3://bucket/prefix``: each file at ``<prefix>/<name>``, through the CLIP weights' S3 source
  (``embeddings.weights.s3_weights``) with the recorded sha256 as the expected one.

A missing or mismatched file is a ``PoseModelError`` naming the file and both sums; nothing falls back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from embeddings.errors import WeightsError
from embeddings.weights import s3_weights, sha256_file

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("blazepose.yaml")
DEFAULT_CACHE_DIR = Path("~/.cache/looksync/models").expanduser()
ROLES = ("detector", "landmarks", "segmentation")
PIP_TIMEOUT_S = 600


class PoseModelError(WeightsError):
    """A pose model file cannot be fetched, or is missing or not the recorded one."""


@dataclass(frozen=True)
class ModelFile:
    role: str
    member: str  # path inside the wheel
    sha256: str

    @property
    def name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PoseModelPaths:
    detector: Path
    landmarks: Path
    segmentation: Path


@lru_cache(maxsize=1)
def recorded() -> tuple[str, dict[str, ModelFile]]:
    """(pinned package, role -> file) from ``blazepose.yaml``."""
    raw = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    files = {role: ModelFile(role, item["member"], item["sha256"]) for role, item in raw["files"].items()}
    return raw["package"], files


def resolve_pose_models(
    source: str = "pypi",
    cache_dir: Path | None = None,
    *,
    fetch: bool = True,
    force: bool = False,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
) -> PoseModelPaths:
    """The three model files, verified. ``fetch=False``: a missing cached file is an error rather
    than a download; ``force``: fetch again even when cached (``pypi`` only)."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR
    if source == "pypi":
        return wheel_models(cache_dir, fetch=fetch, force=force)
    if source.startswith("s3://"):
        return s3_models(source, cache_dir, endpoint_url=s3_endpoint_url, region=s3_region)
    return directory_models(Path(source).expanduser())


def verified(path: Path, expected: str, hint: str = "") -> Path:
    if not path.is_file():
        raise PoseModelError(f"{path}: pose model file not found (expected sha256 {expected}){hint}")
    got = sha256_file(path)
    if got != expected:
        raise PoseModelError(f"{path}: sha256 mismatch (expected {expected}, got {got}){hint}")
    return path


def directory_models(directory: Path) -> PoseModelPaths:
    _, files = recorded()
    return PoseModelPaths(**{role: verified(directory / f.name, f.sha256) for role, f in files.items()})


def s3_models(prefix: str, cache_dir: Path, *, endpoint_url: str | None = None, region: str | None = None) -> PoseModelPaths:
    _, files = recorded()
    paths = {}
    for role, f in files.items():
        resolved = s3_weights(
            f"{prefix.rstrip('/')}/{f.name}#sha256={f.sha256}", cache_dir=cache_dir, endpoint_url=endpoint_url, region=region
        )
        paths[role] = resolved.checkpoint
    return PoseModelPaths(**paths)


def wheel_dir(cache_dir: Path) -> Path:
    package, _ = recorded()
    return cache_dir / "blazepose" / package.replace("==", "-")


def wheel_models(cache_dir: Path, *, fetch: bool = True, force: bool = False) -> PoseModelPaths:
    package, files = recorded()
    directory = wheel_dir(cache_dir)
    missing = [f for f in files.values() if force or not (directory / f.name).is_file()]
    if missing and fetch:
        fetch_wheel_members(directory, missing)
    hint = f"; run `looksync models fetch --force` (or delete it) to fetch {package} again"
    return PoseModelPaths(**{role: verified(directory / f.name, f.sha256, hint) for role, f in files.items()})


def fetch_wheel_members(directory: Path, wanted: list[ModelFile]) -> None:
    """Download the pinned wheel with pip into a temporary directory and extract ``wanted``, each
    verified before it replaces the cached file."""
    package, _ = recorded()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="looksync-pose-") as tmp:
        command = [sys.executable, "-m", "pip", "download", package, "--no-deps", "--only-binary=:all:",
                   "--dest", tmp, "--quiet", "--disable-pip-version-check"]  # fmt: skip
        log.info("pose models: downloading %s with pip", package)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise PoseModelError(f"pip download {package}: no answer within {PIP_TIMEOUT_S}s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-600:]
            raise PoseModelError(f"pip download {package} failed (exit {done.returncode}): {tail}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise PoseModelError(f"pip download {package}: expected one wheel, got {[w.name for w in wheels]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for f in wanted:
                _extract_verified(wheel, wheels[0].name, f, directory / f.name)


def _extract_verified(wheel: zipfile.ZipFile, wheel_name: str, f: ModelFile, target: Path) -> None:
    try:
        info = wheel.getinfo(f.member)
    except KeyError:
        raise PoseModelError(f"{wheel_name}: has no member {f.member}") from None
    partial = target.with_name(f"{target.name}.part-{os.getpid()}")
    digest = hashlib.sha256()
    with wheel.open(info) as src, open(partial, "wb") as dst:
        while block := src.read(1 << 20):
            digest.update(block)
            dst.write(block)
    got = digest.hexdigest()
    if got != f.sha256:
        partial.unlink(missing_ok=True)
        raise PoseModelError(f"{wheel_name}!{f.member}: sha256 mismatch (expected {f.sha256}, got {got})")
    os.replace(partial, target)  # atomic: a concurrent reader sees no file or the verified one
    log.info("pose models: %s -> %s", f.member, target)
