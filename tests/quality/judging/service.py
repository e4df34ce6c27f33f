"""Build the real service for the judging and browser tests: the session's sample catalog and model,
a ratings database of the test's own, the sample looks directory, optional API keys."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask


def judging_app(built_catalog, db_dir: Path, **overrides) -> Flask:
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from serving import create_app

    if "api_keys" in overrides:  # model_copy does not validate: give SecretStr as the settings would
        from pydantic import SecretStr

        overrides["api_keys"] = [SecretStr(key) for key in overrides["api_keys"]]
    settings = built_catalog.settings.model_copy(
        update={
            "judging_db_url": f"sqlite:///{db_dir / 'ratings.sqlite3'}",
            "judging_looks_dir": Path(built_catalog.manifest.looks_dir),
            **overrides,
        }
    )
    engine = SearchEngine(settings, built_catalog.encoder, open_index(settings), MemoryCache())
    return create_app(settings, engine)


SHADOW_WEIGHTS = "random:7"


def shadowed_data(built_catalog, root: Path) -> tuple[Path, dict]:
    """A copy of the built catalog's data under ``root`` with a shadow version of another model
    (``SHADOW_WEIGHTS``, embedded for it by the rollout's own candidate step): (data dir, candidate)."""
    import shutil

    from embeddings import load_encoder
    from looksync.index.factory import open_index
    from looksync.quality.rollout.steps import build_candidate
    from tests.conftest import TINY_MODEL

    shutil.copytree(built_catalog.settings.data_dir, root / "data")
    settings = built_catalog.settings.model_copy(update={"data_dir": root / "data"})
    candidate = build_candidate(settings, open_index(settings), load_encoder(TINY_MODEL, SHADOW_WEIGHTS, device="cpu"))
    return root / "data", candidate


@dataclass
class LiveService:
    url: str
    app: Flask


@contextmanager
def serve(app: Flask) -> Iterator[LiveService]:
    """The app on a real threaded werkzeug server on loopback, port chosen by the OS."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="judging-test-server", daemon=True)
    thread.start()
    try:
        yield LiveService(url=f"http://127.0.0.1:{server.server_port}", app=app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
