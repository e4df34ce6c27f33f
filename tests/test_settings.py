from pathlib import Path

import pytest

from looksync.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("LOOKSYNC_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_stack():
    s = load_settings()
    assert s.resolved_index_backend == "embedded"
    assert s.resolved_index_path == Path("var") / "index"
    assert s.redis_url is None and s.s3_bucket is None and not s.llm_enabled
    assert (s.clip_model, s.clip_weights) == ("ViT-H-14", "laion2b_s32b_b79k")
    assert s.api_keys == [] and s.fetch_allow_private is False


def test_environment_switches_backends_on(monkeypatch):
    monkeypatch.setenv("LOOKSYNC_ES_URL", "https://es.example:9200")
    monkeypatch.setenv("LOOKSYNC_REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("LOOKSYNC_LLM_BASE_URL", "http://127.0.0.1:9000/v1")
    monkeypatch.setenv("LOOKSYNC_LLM_TIMEOUT_S", "1.5")
    monkeypatch.setenv("LOOKSYNC_DATA_DIR", "/tmp/ls")
    s = load_settings()
    assert s.resolved_index_backend == "elasticsearch"
    assert s.redis_url == "redis://127.0.0.1:6379/3"
    assert s.llm_enabled and s.llm_timeout_s == 1.5
    assert s.resolved_index_path == Path("/tmp/ls/index")


def test_explicit_backend_beats_auto(monkeypatch):
    monkeypatch.setenv("LOOKSYNC_ES_URL", "http://127.0.0.1:9200")
    monkeypatch.setenv("LOOKSYNC_INDEX_BACKEND", "embedded")
    assert load_settings().resolved_index_backend == "embedded"


def test_api_keys_are_a_comma_list_of_secrets(monkeypatch):
    monkeypatch.setenv("LOOKSYNC_API_KEYS", "alpha, beta ,,")
    s = load_settings()
    assert [k.get_secret_value() for k in s.api_keys] == ["alpha", "beta"]
    assert "alpha" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOOKSYNC_LLM_TIMEOUT_S", "soon"),
        ("LOOKSYNC_LLM_TIMEOUT_S", "-1"),
        ("LOOKSYNC_PORT", "99999"),
        ("LOOKSYNC_INDEX_BACKEND", "opensearch"),
        ("LOOKSYNC_DEVICE", "tpu"),
        ("LOOKSYNC_FETCH_ALLOW_PRIVATE", "maybe"),
    ],
)
def test_malformed_value_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert name in str(exc.value)
    assert repr(value) in str(exc.value)


def test_cli_reports_bad_configuration_clearly(monkeypatch):
    from click.testing import CliRunner

    from looksync.cli import main

    monkeypatch.setenv("LOOKSYNC_PORT", "eighty")
    result = CliRunner().invoke(main, ["index", "versions"])
    assert result.exit_code != 0
    assert "LOOKSYNC_PORT" in result.output
