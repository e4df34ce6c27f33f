"""The OpenAI-compatible LLM client (OpenAI, vLLM, Ollama...) and the strict JSON schemas LookSync asks for.

Two calls use it: per-layer query generation from the look (vision chat) and listwise reranking of
each layer's candidates. Both ask for ``response_format=json_schema`` with ``strict: true`` and then
check the answer themselves, because not every OpenAI-compatible server enforces the schema. Every
failure becomes one ``LLMError`` whose ``kind`` says what happened (``timeout``, ``connection``,
``http_<status>``, ``invalid_json``, ``schema``), so callers can fall back and say why.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from looksync.catalog.taxonomy import Taxonomy
from looksync.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)


class LLMError(RuntimeError):
    """An LLM call failed or answered outside its schema; ``kind`` is a short machine-readable cause."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def image_data_url(image: Image, max_side: int = 512) -> str:
    """The look as a JPEG data URL, downscaled so the request stays small."""
    img = image.convert("RGB")
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


# ---- schemas ------------------------------------------------------------------------------------


def query_schema(taxonomy: Taxonomy, layers: list[str] | None = None) -> dict[str, Any]:
    """One key per taxonomy layer (all required, as strict mode wants): a query string, or null when
    the layer is absent from the look. When the caller named the layers, each must get a string."""
    ids = layers or list(taxonomy.layers)
    value = {"type": "string"} if layers else {"type": ["string", "null"]}
    return {
        "type": "object",
        "properties": {layer: value for layer in ids},
        "required": ids,
        "additionalProperties": False,
    }


def rerank_schema(candidates: dict[str, list[str]]) -> dict[str, Any]:
    """Per layer, the candidate ids best first; each id must be one of that layer's candidates."""
    return {
        "type": "object",
        "properties": {
            layer: {"type": "array", "items": {"type": "string", "enum": ids}} for layer, ids in candidates.items()
        },
        "required": list(candidates),
        "additionalProperties": False,
    }


def parse_layer_queries(answer: dict[str, Any], taxonomy: Taxonomy, layers: list[str] | None) -> dict[str, str]:
    """Check a query-generation answer: keys must be taxonomy layers (of those asked for), values
    non-empty strings or null. Returns layer -> query for the layers present, in taxonomy order."""
    allowed = layers or list(taxonomy.layers)
    unknown = sorted(set(answer) - set(allowed))
    if unknown:
        raise LLMError("schema", f"unknown layer(s) {unknown}; allowed: {', '.join(allowed)}")
    queries = {}
    for layer in allowed:
        value = answer.get(layer)
        if value is None:
            if layers:
                raise LLMError("schema", f"layer {layer!r} was asked for but has no query")
            continue
        if not isinstance(value, str):
            raise LLMError("schema", f"layer {layer!r}: expected a string or null, got {type(value).__name__}")
        if value.strip():
            queries[layer] = " ".join(value.split())[:300]
    if not queries:
        raise LLMError("schema", "no layer has a query")
    return queries


def parse_ranking(answer: dict[str, Any], candidates: dict[str, list[str]]) -> dict[str, list[str]]:
    """Check a rerank answer: every layer present, every id one of its candidates. Duplicates are
    dropped; candidates the model left out keep their original order after the ranked ones."""
    missing = [layer for layer in candidates if layer not in answer]
    extra = sorted(set(answer) - set(candidates))
    if missing or extra:
        raise LLMError("schema", f"rerank answer layers: missing {missing}, unexpected {extra}")
    ranking = {}
    for layer, ids in candidates.items():
        order = answer[layer]
        if not isinstance(order, list) or not all(isinstance(x, str) for x in order):
            raise LLMError("schema", f"layer {layer!r}: expected a list of candidate ids")
        unknown = sorted(set(order) - set(ids))
        if unknown:
            raise LLMError("schema", f"layer {layer!r}: unknown candidate id(s) {unknown[:5]}")
        ranked = list(dict.fromkeys(order))
        ranking[layer] = ranked + [x for x in ids if x not in set(ranked)]
    return ranking


# ---- client -------------------------------------------------------------------------------------


class LLMClient:
    """A thin wrapper over ``openai.OpenAI`` returning parsed JSON objects or raising ``LLMError``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 4.0,
        max_retries: int = 1,
        breaker_failures: int = 3,
        breaker_open_s: float = 30.0,
    ):
        import openai

        self.base_url = base_url
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        # the circuit breaker: after ``breaker_failures`` outage-like failures in a row (timeout, connection,
        # HTTP 5xx/429) calls fail at once for ``breaker_open_s``, then one probe call decides (0: off)
        self.breaker_failures = breaker_failures
        self.breaker_open_s = breaker_open_s
        self._breaker_lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0
        # local servers (vLLM, Ollama) take any key; the client insists on one
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=max_retries)

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMClient | None:
        if not settings.llm_base_url:
            return None
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(settings.llm_base_url, settings.llm_model, key, settings.llm_timeout_s, settings.llm_max_retries,
                   settings.llm_breaker_failures, settings.llm_breaker_open_s)  # fmt: skip

    def __repr__(self) -> str:
        return f"LLMClient({self.base_url!r}, model={self.model!r})"

    def chat_json(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        schema_name: str,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """One chat completion constrained to ``schema``; the parsed JSON object of its answer. While the
        circuit breaker is open, raises ``LLMError("circuit_open")`` at once instead of calling."""
        self._before_call()
        try:
            answer = self._chat_json(messages, schema, schema_name, timeout_s, max_retries)
        except LLMError as exc:
            self._after_call(exc)
            raise
        self._after_call(None)
        return answer

    def _before_call(self) -> None:
        if self.breaker_failures <= 0:
            return
        with self._breaker_lock:
            now = time.monotonic()
            if now < self._open_until:
                raise LLMError(
                    "circuit_open",
                    f"{self.base_url} failed {self._failures} times in a row; not called for another "
                    f"{self._open_until - now:.0f}s",
                )
            if self._failures >= self.breaker_failures:
                # half-open: this call is the probe; the others keep failing fast until it is answered
                self._open_until = now + self.breaker_open_s

    def _after_call(self, error: LLMError | None) -> None:
        if self.breaker_failures <= 0:
            return
        outage = error is not None and (
            error.kind in ("timeout", "connection", "http_429") or error.kind.startswith("http_5")
        )
        with self._breaker_lock:
            if not outage:  # an answer, even one outside the schema: the endpoint is up
                if self._failures >= self.breaker_failures:
                    log.info("LLM circuit closed", extra={"llm": self.base_url})
                self._failures, self._open_until = 0, 0.0
                return
            self._failures += 1
            if self._failures >= self.breaker_failures:
                self._open_until = time.monotonic() + self.breaker_open_s
                log.warning("LLM circuit open for %.0fs after %d failures in a row: %s",
                            self.breaker_open_s, self._failures, error, extra={"llm": self.base_url})  # fmt: skip

    def _chat_json(self, messages, schema, schema_name, timeout_s, max_retries) -> dict[str, Any]:
        import openai

        client = self._client
        if timeout_s is not None or max_retries is not None:
            client = client.with_options(
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
                max_retries=max_retries if max_retries is not None else self.max_retries,
            )
        try:
            completion = client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=0,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "strict": True, "schema": schema},
                },
            )
        except openai.APITimeoutError as exc:
            raise LLMError("timeout", f"no answer from {self.base_url} within {timeout_s or self.timeout_s}s") from exc
        except openai.APIConnectionError as exc:
            raise LLMError("connection", f"cannot reach {self.base_url}: {exc}") from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"http_{exc.status_code}", f"{self.base_url} answered {exc.status_code}: {str(exc)[:200]}") from exc
        except openai.OpenAIError as exc:
            raise LLMError("error", f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        try:
            content = completion.choices[0].message.content
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMError("invalid_json", f"answer has no message content: {exc}") from exc
        try:
            answer = json.loads(content or "")
        except json.JSONDecodeError as exc:
            raise LLMError("invalid_json", f"answer is not JSON ({exc}): {(content or '')[:80]!r}") from exc
        if not isinstance(answer, dict):
            raise LLMError("invalid_json", f"answer is JSON but not an object: {type(answer).__name__}")
        return answer
