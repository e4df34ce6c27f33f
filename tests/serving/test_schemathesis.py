"""A bounded, seeded schemathesis run against the service's own OpenAPI document (/openapi.json), with the
hostile classes of tests/serving/hostile.py mixed into the generated bodies and query strings: no
operation may answer a 5xx. Derandomized (the same cases every run), positive and negative cases, at
most 12 of each per operation (at most 360 in all), through the WSGI app in-process."""

from __future__ import annotations

import json
import os
import socket

import pytest
import schemathesis
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.serving import hostile

# x 2 modes x 15 operations: at most 360 cases; HOSTILE_FUZZ_CASES raises it for a longer hunt
CASES_PER_OPERATION = int(os.environ.get("HOSTILE_FUZZ_CASES", "12"))


@pytest.fixture(scope="module")
def no_dns():
    patch = pytest.MonkeyPatch()
    real = socket.getaddrinfo
    patch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: real(host, port, *a, **k)
                  if host in ("127.0.0.1", "localhost", "::1") else [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 80))])  # fmt: skip
    yield
    patch.undo()




@pytest.fixture(scope="module")
def api_schema(built_catalog, zeroshot, no_dns, tmp_path_factory):
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from serving import create_app

    judging = tmp_path_factory.mktemp("schemathesis-judging") / "ratings.sqlite3"
    settings_ = built_catalog.settings.model_copy(update={
        "fetch_allow_private": False, "judging_db_url": f"sqlite:///{judging}", "look_cache_ttl_s": 0,
    })  # fmt: skip
    engine = SearchEngine(settings_, built_catalog.encoder, open_index(settings_), MemoryCache(), zeroshot=zeroshot)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(settings_, engine))

    @schema.hook
    def before_generate_body(context, strategy):
        """Half the bodies as generated, half with one field replaced by a hostile value (NaN and the
        infinities in bodies are left to test_hostile.py, which writes the JSON text itself)."""
        def spoil(body):
            if not isinstance(body, dict) or not body:
                return st.just(body)
            return st.tuples(st.sampled_from(sorted(body)), hostile.strict_hostile_values).map(lambda kv: {**body, kv[0]: kv[1]})

        return st.one_of(strategy, strategy.flatmap(spoil))

    @schema.hook
    def before_generate_query(context, strategy):
        def spoil(query):
            if not isinstance(query, dict) or not query:
                return st.just(query)
            values = st.one_of(hostile.query_numbers, hostile.unicode_text.filter(lambda t: "\x00" not in t))
            return st.tuples(st.sampled_from(sorted(query)), values).map(lambda kv: {**query, kv[0]: kv[1]})

        return st.one_of(strategy, strategy.flatmap(spoil))

    return schema


def _cases() -> list:
    """(path, method, mode) for every documented operation: positive cases for all, negative ones for those
    that take parameters or a body (there is nothing to get wrong in the others)."""
    from serving.openapi import openapi_document

    cases = []
    for path, ops in openapi_document()["paths"].items():
        for method, op in ops.items():
            modes = [GenerationMode.POSITIVE]
            if op.get("parameters") or op.get("requestBody"):
                modes.append(GenerationMode.NEGATIVE)
            cases += [pytest.param(path, method.upper(), mode, id=f"{method.upper()} {path} {mode.value}") for mode in modes]
    return cases


@pytest.mark.parametrize(("path", "method", "mode"), _cases())
def test_no_operation_answers_a_5xx(api_schema, path, method, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode, hooks=api_schema.hooks))
    @settings(max_examples=CASES_PER_OPERATION, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case):
        try:
            response = case.call()
        except UnicodeEncodeError:  # a lone surrogate in a multipart field: the client cannot send it
            reject()
        assert response.status_code < 500, (case.method, case.path, case.path_parameters, case.query,
                                            str(case.body)[:300], response.text[:300])  # fmt: skip
        if response.status_code >= 400 and response.status_code != 405:
            error = json.loads(response.text)["error"]
            assert error["code"] and error["message"]

    check()
