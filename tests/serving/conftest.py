"""Serving fixtures: the scripted OpenAI-compatible endpoint, engines over the built sample catalog,
and the sample looks."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from looksync.index.factory import open_index
from looksync.search.cache import MemoryCache
from looksync.search.engine import SearchEngine
from looksync.search.llm import LLMClient
from serving import create_app
from tests.serving.llm_server import ScriptedLLM, start_scripted_llm


@pytest.fixture(scope="session")
def scripted_llm_server():
    state, server = start_scripted_llm()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def scripted_llm(scripted_llm_server) -> ScriptedLLM:
    scripted_llm_server.script()
    return scripted_llm_server


@pytest.fixture(scope="session")
def sample_looks(built_catalog) -> list[tuple[str, bytes, dict]]:
    """(look id, PNG bytes, ground truth) for every sample look."""
    looks_dir = Path(built_catalog.manifest.looks_dir)
    return [
        (look_id, (looks_dir / f"{look_id}.png").read_bytes(), truth)
        for look_id, truth in sorted(built_catalog.ground_truth.items())
    ]


@pytest.fixture
def look(sample_looks):
    return sample_looks[0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def alt_boxes(image, layer: str) -> list[tuple[int, int, int, int]]:
    """Pixel boxes of a layer's other crop extents (taxonomy ``alt_slots``) in ``image``."""
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.regions import pixel_boxes, slot_fraction

    alts = get_taxonomy().layers[layer].alt_slots
    return pixel_boxes(image.size, [slot_fraction(a) for a in alts]) if alts else []


@pytest.fixture(scope="session")
def zeroshot(built_catalog):
    from embeddings.zeroshot import ZeroShot

    return ZeroShot(built_catalog.encoder)


@pytest.fixture(scope="module")
def client(built_catalog, zeroshot):
    """A Flask test client over an engine on the built sample catalog with an in-process cache, shared by a
    module's tests (a module that needs another engine defines its own ``client``)."""
    settings = built_catalog.settings
    engine = SearchEngine(settings, built_catalog.encoder, open_index(settings), MemoryCache(), zeroshot=zeroshot)
    return create_app(settings, engine).test_client()


@pytest.fixture
def make_client(built_catalog, zeroshot):
    """A Flask test client over a fresh engine: settings overrides, an optional LLM URL, a cache."""

    def make(llm_url: str | None = None, cache=None, index=None, llm_retries: int = 0, llm_timeout_s: float = 2.0, **overrides):
        settings = built_catalog.settings.model_copy(update=overrides)
        llm = LLMClient(llm_url, "scripted-vlm", timeout_s=llm_timeout_s, max_retries=llm_retries) if llm_url else None
        engine = SearchEngine(
            settings, built_catalog.encoder, index or open_index(settings), cache or MemoryCache(), llm=llm,
            zeroshot=zeroshot,
        )
        return create_app(settings, engine).test_client()

    return make
