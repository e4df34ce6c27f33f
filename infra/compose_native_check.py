"""Run the Airflow part of infra/compose.yaml natively: the commands and environment of its Airflow
containers, taken from the rendered compose file (with infra/.env.example), started as processes on
this machine against the local PostgreSQL and Redis, then a ``catalog_backfill`` dry run through the
REST API whose embedding task must run on the Celery worker through the ``embedding`` queue.

    PYTHONPATH=. python infra/compose_native_check.py

What is changed from the containers, and only this: hosts become 127.0.0.1 (PostgreSQL as its local
``postgres`` user on a fresh database, Redis on db 13), ports are free ones, secrets are generated, the
DAG and plugin folders are this checkout's, the LookSync settings are a tiny sample's (embedded index,
tiny random CLIP: no Elasticsearch or MinIO here) except the embedding queue, and the worker runs one
process. Everything is stopped afterwards and the database dropped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
COMPOSE = INFRA / "compose.yaml"
ENV_TEMPLATE = INFRA / ".env.example"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker")


def env_template(path: Path = ENV_TEMPLATE) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` interpolation, and ``$$`` as a literal ``$``."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value).replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def rendered(compose: Path = COMPOSE, env: dict[str, str] | None = None) -> dict:
    """The compose file with the template's values in (YAML merge keys resolved by the loader)."""
    import yaml

    return interpolate(yaml.safe_load(compose.read_text(encoding="utf-8")), env or env_template())


def commands(service: dict) -> list[list[str]]:
    """The command lines a service runs: a list command as is; ``bash -c`` split on ``&&``."""
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    if command[:2] in (["bash", "-c"], ["sh", "-c"]):
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def _standalone_module():
    if "airflow_standalone_check" in sys.modules:
        return sys.modules["airflow_standalone_check"]
    spec = importlib.util.spec_from_file_location("airflow_standalone_check", INFRA / "airflow_standalone_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def native_env(service_env: dict[str, str], home: Path, database_url: str, port: int, looksync_env: dict[str, str]) -> dict[str, str]:
    """A container's environment for a process on this machine (see the module docstring)."""
    sa = _standalone_module()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOOKSYNC_"))}
    env.update({k: str(v) for k, v in service_env.items() if k.startswith("AIRFLOW__")})
    env.update({
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": database_url,
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/13",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(sa.free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(sa.free_port()),
        "NO_COLOR": "1",
    })  # fmt: skip
    env.update(looksync_env)
    env["LOOKSYNC_AIRFLOW_EMBEDDING_QUEUE"] = service_env["LOOKSYNC_AIRFLOW_EMBEDDING_QUEUE"]
    return env


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def run_check(workdir: Path, timeout_s: float = 420.0) -> dict[str, Any]:
    """The whole check; raises ``StandaloneCheckError`` naming the failed step. Returns what it saw."""
    import psycopg
    import redis
    import requests

    sa = _standalone_module()
    compose = rendered()
    services = compose["services"]
    started = time.monotonic()
    deadline = started + timeout_s
    home = workdir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    port = sa.free_port()
    database = f"looksync_native_{uuid.uuid4().hex[:8]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    sample = sa.tiny_backfill(workdir, "redis://127.0.0.1:6379/13", f"looksync-native:{secrets.token_hex(4)}")
    env = native_env(services["airflow-scheduler"]["environment"], home, f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
                     port, sample.env)  # fmt: skip
    procs: dict[str, subprocess.Popen] = {}
    seen: set[int] = set()
    logs: dict[str, Path] = {}
    seconds: dict[str, float] = {}

    def tail(n: int = 25) -> str:
        out = []
        for name, path in logs.items():
            lines = path.read_text(errors="replace").splitlines()[-n:] if path.exists() else []
            out.append(f"--- {name} ---\n" + "\n".join(line[:300] for line in lines))
        return "\n".join(out)

    def wait(what: str, probe, interval: float = 1.0):
        last = None
        while time.monotonic() < deadline:
            for name, proc in procs.items():
                seen.update(sa._descendants(proc.pid))
                if proc.poll() is not None:
                    raise sa.StandaloneCheckError(f"{name} exited ({proc.returncode}) while waiting for {what}\n{tail()}")
            try:
                value = probe()
                if value:
                    seconds[what] = round(time.monotonic() - started, 1)
                    return value
            except sa.StandaloneCheckError:
                raise
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(interval)
        raise sa.StandaloneCheckError(f"timed out waiting for {what} (last: {last!r})\n{tail()}")

    try:
        for line in commands(services["airflow-init"]):
            done = subprocess.run(line, env=env, cwd=home, capture_output=True, text=True, timeout=300)
            if done.returncode:
                raise sa.StandaloneCheckError(f"airflow-init: {shlex.join(line)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        seconds["airflow-init"] = round(time.monotonic() - started, 1)
        for name in AIRFLOW_SERVICES:
            (line,) = commands(services[name])
            if name == "airflow-apiserver":
                line = [*line[: line.index("--port") + 1], str(port), *line[line.index("--port") + 2 :]]
            logs[name] = workdir / f"{name}.log"
            with logs[name].open("wb") as out:
                procs[name] = subprocess.Popen(line, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT,
                                               start_new_session=True)  # fmt: skip
        api = sa._Api(f"http://127.0.0.1:{port}", tail)
        password_file = home / "simple_auth_manager_passwords.json.generated"
        user = env_template()["AIRFLOW_ADMIN_USER"]

        def login():
            if not password_file.exists() or not password_file.read_text().strip():
                return None
            password = json.loads(password_file.read_text())[user]
            response = requests.post(f"{api.base}/auth/token", json={"username": user, "password": password}, timeout=10)
            response.raise_for_status()
            return response.json()["access_token"]

        api.token = wait("api-server login", login)
        requests.get(f"{api.base}/execution/health", timeout=120)
        wait("dags listed", lambda: "catalog_backfill" in {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]})
        api.call("PATCH", "/api/v2/dags/catalog_backfill", {"is_paused": False})
        run_id = api.call("POST", "/api/v2/dags/catalog_backfill/dagRuns", {"logical_date": None, "conf": sample.conf})["dag_run_id"]

        def finished():
            run = api.call("GET", f"/api/v2/dags/catalog_backfill/dagRuns/{run_id}")
            if run["state"] == "failed":
                raise sa.StandaloneCheckError(f"run {run_id} failed\n{tail()}")
            return run if run["state"] == "success" else None

        wait("run success", finished, interval=2.0)
        instances = api.call("GET", f"/api/v2/dags/catalog_backfill/dagRuns/{run_id}/taskInstances")["task_instances"]
        tasks = {f"{t['task_id']}[{t['map_index']}]": {"state": t["state"], "queue": t.get("queue"), "pool": t.get("pool"),
                                                       "hostname": t.get("hostname")} for t in instances}  # fmt: skip
        worker_log = logs["airflow-worker"].read_text(errors="replace")
        return {"run_id": run_id, "tasks": tasks, "seconds": seconds, "worker_took_tasks": worker_log.count("Executing workload")
                or worker_log.count("Received task")}  # fmt: skip
    finally:
        for proc in procs.values():
            sa.stop_tree(proc, seen)
        sample.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        broker = redis.Redis.from_url("redis://127.0.0.1:6379/13")
        keys = [*broker.scan_iter("_kombu.*"), *broker.scan_iter("unacked*"), *broker.scan_iter("looksync-native:*")]
        if keys:
            broker.delete(*keys)


def main() -> int:
    sa = _standalone_module()
    with tempfile.TemporaryDirectory(prefix="looksync-native-") as tmp:
        try:
            result = run_check(Path(tmp))
        except sa.StandaloneCheckError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
