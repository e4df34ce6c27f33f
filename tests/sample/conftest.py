"""Shared fixtures: a generated sample catalog with planted faults, served over real HTTP on loopback."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from looksync.catalog.vendors import ParsedRow, load_vendor_config, read_feed
from looksync.sample import SampleManifest, SampleServer, generate_sample, serve_sample

SAMPLE_SIZE = 150
FAULT_RATE = 0.2  # 3 of each fault kind: one per vendor


@dataclass
class ServedSample:
    manifest: SampleManifest
    server: SampleServer
    rows: dict[str, list[ParsedRow]]  # vendor -> read_feed output
    faults: list[dict]


@pytest.fixture(scope="session")
def served_sample(tmp_path_factory: pytest.TempPathFactory) -> ServedSample:
    """Start the server first (free port), then generate with its URL: the port-0 workflow."""
    root = tmp_path_factory.mktemp("sample")
    with serve_sample(root) as server:
        manifest = generate_sample(root, size=SAMPLE_SIZE, seed=11, fault_rate=FAULT_RATE, image_base_url=server.url)
        rows = {v: list(read_feed(load_vendor_config(v), path)) for v, path in manifest.feeds.items()}
        faults = [json.loads(line) for line in manifest.faults_path.read_text(encoding="utf-8").splitlines()]
        yield ServedSample(manifest, server, rows, faults)


@dataclass
class HttpReply:
    status: int
    content_type: str
    body: bytes


def http_get(url: str) -> HttpReply:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return HttpReply(reply.status, reply.headers.get("Content-Type", ""), reply.read())
    except urllib.error.HTTPError as error:
        return HttpReply(error.code, error.headers.get("Content-Type", ""), error.read())


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def get():
    return http_get


@pytest.fixture
def digest():
    return tree_digest
