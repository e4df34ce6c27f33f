"""The compose deployment (infra/compose.yaml, infra/Dockerfile, infra/.env.example), validated without a
container engine (none runs here): the compose file against the compose-spec schema and rendered by
docker-compose when installed, the Dockerfile through BuildKit's own parser, the rendered services,
profiles, environment and mounts, and every command the LookSync image runs parsed by its real CLI
(click for ``looksync``, Airflow's argparse parser for ``airflow``). The slow test runs the Airflow
containers' commands natively (infra/compose_native_check.py) against the local PostgreSQL and Redis.
docs/deploy.md says what was and was not run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

INFRA = REPO / "infra"
COMPOSE = INFRA / "compose.yaml"
ENV_TEMPLATE = INFRA / ".env.example"
DOCKERFILE = INFRA / "Dockerfile"
LOOKSYNC_IMAGE_SERVICES = {
    "es-init", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu", "looksync",
}  # fmt: skip
SERVICES = LOOKSYNC_IMAGE_SERVICES | {
    "elasticsearch", "es01", "es02", "es03", "minio", "minio-init", "redis", "postgres", "prometheus", "grafana",
}  # fmt: skip


def _native_check():
    """infra/compose_native_check.py (not a package): its rendering helpers are the ones tested here."""
    import importlib.util

    if "compose_native_check" in sys.modules:
        return sys.modules["compose_native_check"]
    spec = importlib.util.spec_from_file_location("compose_native_check", INFRA / "compose_native_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_VAR = _native_check()._VAR
env_template = _native_check().env_template
rendered = _native_check().rendered
commands = _native_check().commands


def test_compose_file_is_valid_against_the_compose_spec_schema():
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("profiles", ["es-single", "es-cluster,gpu"])
def test_docker_compose_renders_the_file_with_the_env_template(profiles, tmp_path):
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose (Debian's, no engine needed for `config`) is not installed: infra/dev/test-services.sh")
    env = {**os.environ, "COMPOSE_PROFILES": profiles}
    done = subprocess.run([tool, "--env-file", str(ENV_TEMPLATE), "-f", str(COMPOSE), "config"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert set(config["services"]) == SERVICES
    worker = config["services"]["airflow-worker"]
    assert worker["command"] == ["airflow", "celery", "worker", "--queues", "default,embedding"]
    assert worker["environment"]["LOOKSYNC_AIRFLOW_EMBEDDING_QUEUE"] == "embedding"


def test_services_profiles_and_wiring():
    compose = rendered()
    services = compose["services"]
    assert set(services) == SERVICES
    profiles = {name: tuple(s.get("profiles", ())) for name, s in services.items()}
    assert profiles["elasticsearch"] == ("es-single",)
    assert {profiles[n] for n in ("es01", "es02", "es03")} == {("es-cluster",)}
    assert profiles["airflow-worker-gpu"] == ("gpu",)
    assert all(not p for n, p in profiles.items() if n not in {"elasticsearch", "es01", "es02", "es03", "airflow-worker-gpu"})
    assert env_template()["COMPOSE_PROFILES"] == "es-single"
    # whichever Elasticsearch runs answers as http://elasticsearch:9200
    assert "elasticsearch" in services["es01"]["networks"]["default"]["aliases"]
    assert services["elasticsearch"]["environment"]["discovery.type"] == "single-node"
    assert services["es01"]["environment"]["cluster.initial_master_nodes"] == "es01,es02,es03"
    for name in LOOKSYNC_IMAGE_SERVICES:
        assert services[name]["build"]["dockerfile"] == "infra/Dockerfile" and services[name]["build"]["context"] == ".."
        assert services[name]["environment"]["LOOKSYNC_ES_URL"] == "http://elasticsearch:9200"
    # Airflow 3 components, CeleryExecutor, one metadata DB and JWT secret for all of them
    airflow = {n: s for n, s in services.items() if n.startswith("airflow-")}
    assert {tuple(commands(s)[0][:3]) for n, s in airflow.items() if n != "airflow-init"} == {
        ("airflow", "api-server", "--port"), ("airflow", "scheduler"), ("airflow", "dag-processor"),
        ("airflow", "triggerer"), ("airflow", "celery", "worker"),
    }  # fmt: skip
    for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API_AUTH__JWT_SECRET",
                "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):  # fmt: skip
        assert len({s["environment"][key] for s in airflow.values()}) == 1, key
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    gpu = services["airflow-worker-gpu"]
    assert commands(gpu)[0][:5] == ["airflow", "celery", "worker", "--queues", "embedding"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["environment"]["LOOKSYNC_DEVICE"] == "cuda"
    # start order: the service waits for the snapshot repository, which waits for the bucket
    assert services["looksync"]["depends_on"]["es-init"]["condition"] == "service_completed_successfully"
    assert services["es-init"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-scheduler"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    # published ports only on loopback
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    # Prometheus scrapes the service's open /metrics
    mount = services["prometheus"]["volumes"][0].split(":")
    prometheus = yaml.safe_load((INFRA / mount[0]).read_text(encoding="utf-8"))
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["looksync:8000"]
    from serving.app import OPEN_PATHS

    assert "/metrics" in OPEN_PATHS and services["looksync"]["environment"]["LOOKSYNC_PORT"] == "8000"


def test_grafana_dashboard_queries_only_metrics_the_service_exports():
    """Every metric a panel of infra/grafana/dashboards/*.json queries is in the exposition of the
    service's real metrics object (after one request of each kind), and the panels use the provisioned
    Prometheus data source."""
    from serving.metrics import ServiceMetrics

    services = rendered()["services"]
    sources = {v.split(":")[1]: INFRA / v.split(":")[0] for v in services["grafana"]["volumes"] if v.startswith("./")}
    datasource = yaml.safe_load((sources["/etc/grafana/provisioning"] / "datasources" / "prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    provider = yaml.safe_load((sources["/etc/grafana/provisioning"] / "dashboards" / "looksync.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"

    metrics = ServiceMetrics()
    metrics.observe_request("look", "POST", 200, 0.3)
    metrics.observe_response("look", {"timings_ms": {"knn": 12.0}, "degraded": ["llm_rerank_unavailable: timeout"]})
    metrics.cache("look", "hit")
    metrics.watch_encoder(object())
    exported = {line.split("{")[0].split(" ")[0] for line in metrics.exposition().decode().splitlines()
                if line and not line.startswith("#")}  # fmt: skip
    dashboards = sorted(sources["/var/lib/grafana/dashboards"].glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        targets = [t for p in dashboard["panels"] for t in p["targets"]]
        assert targets and all(t["datasource"]["uid"] == source["uid"] for t in targets)
        used = {name for t in targets for name in re.findall(r"\blooksync_[a-z_]+", t["expr"])}
        assert used and used <= exported, f"{path.name} queries metrics the service does not export: {used - exported}"


def test_elasticsearch_s3_client_settings_are_the_backends():
    from looksync.index.es_bodies import s3_client_settings

    env = rendered()["services"]["elasticsearch"]["environment"]
    expected = s3_client_settings("default", "http://minio:9000", True, env_template()["S3_REGION"])
    assert {k: env[k] for k in env if k.startswith("s3.client.")} == {
        k: str(v).lower() if isinstance(v, bool) else v for k, v in expected.items()
    }
    assert env["xpack.security.enabled"] == "false"  # docs/deploy.md: a private network, not production auth


def test_every_variable_is_in_the_env_template_and_every_setting_exists():
    text = COMPOSE.read_text(encoding="utf-8")
    used = {m.group(1) for m in _VAR.finditer(text)}
    template = env_template()
    assert used - set(template) == set(), "compose uses variables the template does not define"
    assert set(template) - used - {"COMPOSE_PROFILES"} == set(), "template keys the compose file never uses"
    from looksync.settings import ENV_PREFIX, Settings

    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    compose = rendered()
    names = set(template) | {k for s in compose["services"].values() for k in (s.get("environment") or {})}
    unknown = {n for n in names if n.startswith(ENV_PREFIX) and n not in fields and n != "LOOKSYNC_IMAGE"}
    assert unknown == set(), f"not LookSync settings: {unknown}"


def test_the_looksync_environment_of_each_container_loads_as_settings(monkeypatch):
    from looksync.settings import load_settings

    for name in LOOKSYNC_IMAGE_SERVICES:
        env = rendered()["services"][name]["environment"]
        for key in [k for k in os.environ if k.startswith("LOOKSYNC_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("LOOKSYNC_"):
                monkeypatch.setenv(key, str(value))
        settings = load_settings()
        assert settings.resolved_index_backend == "elasticsearch" and settings.es_url == "http://elasticsearch:9200"
        assert settings.s3_endpoint_url == "http://minio:9000" and settings.s3_bucket == env_template()["S3_BUCKET"]


def test_every_command_the_looksync_image_runs_exists(tmp_path):
    """``looksync ...`` resolved and its options parsed by click; ``airflow ...`` by Airflow's own parser
    (CeleryExecutor set, so ``airflow celery`` is there, as in the containers); healthcheck code compiles."""
    import click

    from looksync.cli import main

    compose = rendered()
    airflow_lines, seen = [], set()
    for name in sorted(LOOKSYNC_IMAGE_SERVICES):
        for line in commands(compose["services"][name]):
            seen.add(line[0])
            if line[0] == "looksync":
                command, args, ctx = main, line[1:], None
                while isinstance(command, click.Group):
                    ctx = command.make_context(command.name, list(args), parent=ctx, resilient_parsing=False)
                    sub = command.get_command(ctx, args[0])
                    assert sub is not None, f"{name}: no command {line}"
                    command, args = sub, args[1:]
                command.make_context(command.name, list(args), parent=ctx)  # raises on unknown options
            else:
                assert line[0] == "airflow", f"{name}: {line}"
                airflow_lines.append(line[1:])
        health = compose["services"][name].get("healthcheck", {}).get("test", [])
        if health[:3] == ["CMD", "python", "-c"]:
            compile(health[3], f"{name} healthcheck", "exec")
    assert seen == {"looksync", "airflow"}
    script = (
        "import json, sys\nfrom airflow.cli.cli_parser import get_parser\nparser = get_parser()\n"
        "for args in json.loads(sys.argv[1]):\n    ns = parser.parse_args(args)\n    assert callable(ns.func), args\n"
        "print('PARSED', len(json.loads(sys.argv[1])))\n"
    )
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(airflow_lines)], capture_output=True, text=True,
                          timeout=180, env=env)  # fmt: skip
    assert done.returncode == 0 and f"PARSED {len(airflow_lines)}" in done.stdout, done.stderr[-3000:]


def test_dockerfile_parses_and_matches_the_repository():
    import dockerfile

    from looksync.cli import main

    parsed = dockerfile.parse_file(str(DOCKERFILE))
    by_cmd: dict[str, list] = {}
    for instruction in parsed:
        by_cmd.setdefault(instruction.cmd.upper(), []).append(instruction)
    assert by_cmd["FROM"][0].value[0].startswith("python:3.11")
    args = dict(a.value[0].split("=", 1) for a in by_cmd["ARG"] if "=" in a.value[0])
    pins = dict(re.findall(r"^(torch|torchvision)==([\w.]+)", (REPO / "requirements.txt").read_text(), re.M))
    assert (args["TORCH_VERSION"], args["TORCHVISION_VERSION"]) == (pins["torch"], pins["torchvision"])
    runs = " ".join(" ".join(r.value) for r in by_cmd["RUN"])
    assert "pip install -r requirements.txt" in runs and "pip install --no-deps -e ." in runs
    for copy in by_cmd["COPY"]:
        for source in copy.value[:-1]:
            assert (REPO / source).exists(), f"COPY source {source} missing"
    assert by_cmd["USER"][-1].value == ("50000",)
    assert by_cmd["ENTRYPOINT"][0].json and by_cmd["ENTRYPOINT"][0].value[0] == "/usr/bin/tini"
    (cmd,) = by_cmd["CMD"]
    assert cmd.json and list(cmd.value) == ["looksync", "serve"] and main.get_command(None, "serve") is not None
    assert 'looksync = "looksync.cli:main"' in (REPO / "pyproject.toml").read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", "infra/.env"} <= set(ignored)


def test_make_es_test_runs_the_contract_suite_against_the_compose_cluster():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    target = makefile.split("\nes-test:", 1)[1].split("\n\n", 1)[0]
    assert "LOOKSYNC_ES_URL" in target and "tests/index" in target and "127.0.0.1:9200" in target


@pytest.mark.slow
def test_the_airflow_containers_run_natively_and_embedding_goes_through_its_queue(tmp_path):
    """infra/compose_native_check.py: the commands and environment of airflow-init, the API server,
    scheduler, DAG processor, triggerer and Celery worker, as processes here (PostgreSQL, Redis on
    loopback), then a catalog_backfill dry run through the REST API: every task succeeds on the Celery
    worker and the embedding task (pool `embedding`) went through the `embedding` queue."""
    result = _native_check().run_check(tmp_path)
    tasks = result["tasks"]
    assert {t["state"] for t in tasks.values()} == {"success"}, tasks
    (embed,) = [t for name, t in tasks.items() if name.startswith("embed[")]
    assert (embed["queue"], embed["pool"]) == ("embedding", "embedding")
    assert {t["queue"] for name, t in tasks.items() if not name.startswith("embed[")} == {"default"}
    assert result["worker_took_tasks"] >= len(tasks)
