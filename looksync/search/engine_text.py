"""Text vectors of the online path: ``embed_texts`` (the precomputed vocabulary table of this model,
else the text cache per model id, else one encoder batch for the misses), the vocabulary's precompute
(loaded, or built now or in a background thread) and ``close``, which stops that build; engines still
building are closed at interpreter exit.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
import time
import weakref

import numpy as np

from looksync.search.cache import TextVectorTable
from looksync.search.engine_base import EngineBase, log
from looksync.search.querygen import local_vocabulary

CLOSE_TIMEOUT_S = 10.0  # how long close() waits for the background build to reach the end of its batch


class TextVectorsMixin(EngineBase):
    """``embed_text(s)``, ``precompute_text_vocabulary`` and ``close`` of ``SearchEngine``."""

    def precompute_text_vocabulary(self, mode: str = "blocking", texts: list[str] | None = None) -> threading.Thread | None:
        """Text vectors for every query the local generator can write, so its text-embedding stage is
        a lookup: loaded from ``text_vocab_dir`` when saved for this model id and vocabulary, else
        computed (``blocking``: now; ``background``: in a daemon thread, requests meanwhile embed as
        usual; ``close()`` stops it, as interpreter exit does) and saved. ``off``: nothing. ``texts``:
        another vocabulary (tests). Returns the background thread, if one was started."""
        if mode == "off":
            return None
        if mode not in ("background", "blocking"):
            raise ValueError(f"text_vocab_precompute {mode!r}: expected off, background or blocking")
        directory = self.settings.text_vocab_dir or self.settings.data_dir / "textvec"
        texts = local_vocabulary(self.taxonomy) if texts is None else texts
        table = TextVectorTable.load(directory, self.encoder.model_id, texts)
        if table is not None:
            self.text_table, self.text_vocab_state = table, "ready"
            return None
        self.text_vocab_state = "building"

        def build() -> None:
            start = time.perf_counter()
            try:
                # batches of the encoder's size: a stop, and a request waiting for the model, waits one batch
                built = TextVectorTable.build(
                    self.encoder, texts, batch_size=self.encoder.batch_size, stop=self._text_vocab_stop
                )
            except Exception:  # a failed precompute leaves the service on per-request embedding
                log.exception("text vocabulary precompute failed; text queries are embedded per request")
                self.text_vocab_state = "failed"
                return
            if built is None:
                self.text_vocab_state = "off"
                return
            self.text_table, self.text_vocab_state = built, "ready"
            log.info("text vocabulary: %d vectors in %.1fs", len(built), time.perf_counter() - start)
            try:
                built.save(directory)
            except OSError as exc:
                log.warning("text vocabulary not saved to %s: %s", directory, exc)

        if mode == "blocking":
            build()
            return None
        thread = threading.Thread(target=build, name="text-vocabulary", daemon=True)
        self._text_vocab_thread = thread
        _engines_to_close.add(self)
        thread.start()
        return thread

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the background text-vocabulary build at the end of its current batch and wait for it (at
        most ``timeout_s``). Runs at interpreter exit for every engine still building, from gunicorn's
        ``worker_exit`` hook, and in tests; calling it again does nothing more."""
        self._text_vocab_stop.set()
        thread = self._text_vocab_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("text vocabulary build still running %.0f s after the stop; exit may abort", timeout_s)
        _engines_to_close.discard(self)

    def embed_text(self, text: str, degraded: list[str]) -> np.ndarray:
        return self.embed_texts([text], degraded)[0]

    def embed_texts(self, texts: list[str], degraded: list[str]) -> np.ndarray:
        """len(texts) x dim: from the precomputed vocabulary table (this model's only), else the text
        cache (per model id), else one ``encode_texts`` batch for all the misses (then cached)."""
        model_id = self.encoder.model_id
        out: list[np.ndarray | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        table = self.text_table
        for i, text in enumerate(texts):
            vector = table.get(model_id, text) if table is not None else None
            if vector is not None:
                out[i] = vector
                continue
            if text in missing:
                missing[text].append(i)
                continue
            cached = self._cache_get("text_embedding", _text_key(model_id, text), degraded)
            if cached is not None:
                out[i] = np.frombuffer(cached, dtype=np.float32)
            else:
                missing[text] = [i]
        if missing:
            vectors = self.encoder.encode_texts(list(missing)).astype(np.float32, copy=False)
            for (text, rows), vector in zip(missing.items(), vectors, strict=True):
                for i in rows:
                    out[i] = vector
                self._cache_set(_text_key(model_id, text), vector.tobytes(), degraded)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack(out)  # type: ignore[arg-type]


# Engines with a background build, held weakly so this set keeps none alive. At interpreter exit the builds
# are stopped and joined while Python still runs threads: a daemon thread still inside a torch call when
# finalisation starts is ended as it takes the GIL back, unwinding through torch's C++ frames, and
# libstdc++ aborts the process ("terminate called without an active exception", exit status 134).
_engines_to_close: weakref.WeakSet[TextVectorsMixin] = weakref.WeakSet()


@atexit.register
def _close_engines_at_exit() -> None:
    for engine in list(_engines_to_close):
        engine.close()


def _text_key(model_id: str, text: str) -> str:
    return "textvec:" + hashlib.sha1(f"{model_id}\x00{text}".encode()).hexdigest()
