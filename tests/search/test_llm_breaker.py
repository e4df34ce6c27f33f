"""The LLM client's circuit breaker: after failures in a row that look like an outage it stops calling
for a while (a hanging LLM must not hold every server thread), then one probe decides."""

from __future__ import annotations

import time

import pytest

from looksync.search.llm import LLMClient, LLMError
from tests.serving.llm_server import Step, start_scripted_llm

OK = {"answer": "fine"}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": False}


@pytest.fixture
def llm():
    scripted, server = start_scripted_llm()
    yield scripted
    server.shutdown()
    server.server_close()


def _call(client):
    return client.chat_json([{"role": "user", "content": "hi"}], SCHEMA, "test")


def test_the_breaker_opens_after_outages_in_a_row_fails_fast_then_probes(llm):
    client = LLMClient(llm.url, "m", timeout_s=0.3, max_retries=0, breaker_failures=3, breaker_open_s=1.0)
    llm.script(Step(OK, delay_s=2), Step(status=503), Step(OK, delay_s=2), default=Step(OK))
    kinds = []
    for _ in range(3):
        with pytest.raises(LLMError) as err:
            _call(client)
        kinds.append(err.value.kind)
    assert kinds == ["timeout", "http_503", "timeout"]

    start = time.perf_counter()
    with pytest.raises(LLMError) as err:
        _call(client)
    assert err.value.kind == "circuit_open" and time.perf_counter() - start < 0.05
    assert len(llm.requests) == 3  # the open breaker sent nothing

    time.sleep(1.1)  # open period over: the next call is the probe, and the endpoint has recovered
    assert _call(client) == OK
    assert _call(client) == OK and len(llm.requests) == 5


def test_a_failed_probe_opens_it_again_and_answers_outside_the_schema_do_not_count(llm):
    client = LLMClient(llm.url, "m", timeout_s=0.3, max_retries=0, breaker_failures=2, breaker_open_s=0.5)
    llm.script(Step("not json"), Step("not json"), Step("not json"), default=Step(OK))
    for _ in range(3):  # the endpoint answers, badly: an LLM problem, not an outage
        with pytest.raises(LLMError, match="invalid_json"):
            _call(client)
    assert _call(client) == OK

    llm.script(default=Step(status=500))
    for _ in range(2):
        with pytest.raises(LLMError, match="http_500"):
            _call(client)
    with pytest.raises(LLMError, match="circuit_open"):
        _call(client)
    time.sleep(0.6)
    with pytest.raises(LLMError, match="http_500"):  # the probe fails...
        _call(client)
    with pytest.raises(LLMError, match="circuit_open"):  # ...and the breaker is open again at once
        _call(client)


def test_no_breaker_when_switched_off(llm):
    client = LLMClient(llm.url, "m", timeout_s=0.3, max_retries=0, breaker_failures=0)
    llm.script(default=Step(status=500))
    for _ in range(5):
        with pytest.raises(LLMError, match="http_500"):
            _call(client)
    assert len(llm.requests) == 5
