"""Start ``airflow standalone`` on 127.0.0.1 with this repo's dags/ and plugins/, check it through the
Airflow 3 REST API, trigger ``catalog_backfill`` with Params and wait for the run to succeed; then stop
every process it started, whatever happened.

    PYTHONPATH=. python infra/airflow_standalone_check.py            # a dry-run backfill of a tiny sample

What it does, in order (each wait bounded; a failure names the step and shows the standalone log's tail):
1. a fresh ``AIRFLOW_HOME`` (temporary directory), SQLite, examples off, API server on a free port of
   127.0.0.1, LocalExecutor (what standalone forces), a random JWT secret shared by all components;
2. ``airflow standalone`` in its own process group (its scheduler, dag-processor, triggerer and
   api-server are its children);
3. the admin password from the simple auth manager's generated password file
   (``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``, written on first start), then a
   JWT from ``POST /auth/token``; every API call sends ``Authorization: Bearer <jwt>``;
4. creates the ``embedding`` pool the way ``looksync airflow setup --api-url`` does
   (``looksync.airflow.pools.ensure_pools_api``: ``GET /api/v2/pools/embedding``, then POST or PATCH);
5. waits until ``GET /api/v2/dags`` lists the expected DAGs and ``GET /api/v2/importErrors`` is empty;
6. unpauses ``catalog_backfill`` only (the other DAGs stay paused: no scheduled ingest starts), posts a
   run with the given Params (``POST /api/v2/dags/catalog_backfill/dagRuns``), waits for ``success``
   and returns the run, its task states and the tasks' return values (XCom);
7. stops the process group and every descendant seen (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPECTED_DAGS = ("catalog_backfill", "catalog_ingest", "catalog_model_rollout", "catalog_reindex")
TERMINAL_FAILED = {"failed", "upstream_failed"}


class StandaloneCheckError(RuntimeError):
    """A step of the check failed; the message names the step and ends with the standalone log's tail."""


@dataclass
class StandaloneResult:
    port: int
    home: str
    dags: list[str]
    run: dict[str, Any]
    tasks: dict[str, str]
    xcom: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)  # every process seen in the tree (all stopped)
    pools: list[dict] = field(default_factory=list)  # what the pool setup did: name, slots, action


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def standalone_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``airflow standalone``: the caller's, minus any AIRFLOW*/LOOKSYNC_*, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOKSYNC_", "AIRFLOW"))}
    venv_bin = str(Path(sys.executable).parent)  # standalone starts its components as `airflow ...` from PATH
    env.update({
        "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
        "PYTHONPATH": str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "NO_COLOR": "1",
    })  # fmt: skip
    env.update(extra or {})
    return env


class _Api:
    def __init__(self, base: str, log_tail: Callable[[], str]):
        self.base, self.token, self._tail = base, None, log_tail

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        import requests

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = requests.request(method, self.base + path, json=body, headers=headers, timeout=30)
        if response.status_code not in ok:
            raise StandaloneCheckError(
                f"{method} {path} answered {response.status_code}: {response.text[:1000]}\n{self._tail()}"
            )
        return response.json() if response.content else None


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_tree(proc: subprocess.Popen, seen: set[int], grace_s: float = 8.0) -> list[int]:
    """SIGTERM the process group and every descendant ever seen, SIGKILL what is left after ``grace_s``.
    Never raises; returns the PIDs still running at the end (empty when all stopped)."""
    seen |= set(_descendants(proc.pid))
    targets = sorted(seen | {proc.pid})
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group standalone leads (start_new_session=True)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in targets:  # descendants that left the group (setsid) are still ours
            if pid != proc.pid and _running(pid):
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reap standalone itself
            if not any(_running(pid) for pid in targets):
                break
            time.sleep(0.2)
        else:
            continue  # something survived SIGTERM: SIGKILL round
        break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    return [pid for pid in targets if _running(pid)]


def run_standalone_check(
    conf: dict[str, Any],
    looksync_env: dict[str, str] | None = None,
    *,
    home: Path | None = None,
    timeout_s: float = 240.0,
    dag_id: str = "catalog_backfill",
    expected_dags: tuple[str, ...] = EXPECTED_DAGS,
) -> StandaloneResult:
    """The whole check (see the module docstring); raises ``StandaloneCheckError`` on any failed step.
    ``timeout_s`` bounds the whole check from start to run success (stopping comes on top)."""
    started = time.monotonic()
    deadline = started + timeout_s
    home = Path(home or tempfile.mkdtemp(prefix="looksync-airflow-"))
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = home / "standalone.log"
    seen: set[int] = set()
    seconds: dict[str, float] = {}

    def tail(n: int = 60) -> str:
        try:
            lines = log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            lines = ["(no standalone log)"]
        return f"--- last {len(lines)} lines of {log_path} ---\n" + "\n".join(lines)

    def wait(what: str, probe: Callable[[], Any], interval: float = 1.0) -> Any:
        last_error = None
        while time.monotonic() < deadline:
            seen.update(_descendants(proc.pid))
            if proc.poll() is not None:
                raise StandaloneCheckError(f"airflow standalone exited ({proc.returncode}) while waiting for {what}\n{tail()}")
            try:
                value = probe()
                if value:
                    seconds[what] = round(time.monotonic() - started, 1)
                    return value
            except StandaloneCheckError:
                raise
            except Exception as exc:  # not up yet
                last_error = exc
            time.sleep(interval)
        raise StandaloneCheckError(
            f"timed out after {timeout_s:.0f}s waiting for {what} (last error: {last_error!r})\n{tail()}"
        )

    env = standalone_env(home, port, looksync_env)
    api = _Api(f"http://127.0.0.1:{port}", tail)
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "standalone"], env=env, cwd=home,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        import requests

        password_file = home / "simple_auth_manager_passwords.json.generated"

        def login() -> str | None:
            if not password_file.exists() or not password_file.read_text().strip():
                return None
            password = json.loads(password_file.read_text())["admin"]
            response = requests.post(f"{api.base}/auth/token", json={"username": "admin", "password": password}, timeout=10)
            if response.status_code in (401, 403):
                raise StandaloneCheckError(f"POST /auth/token refused the generated admin password: {response.text}\n{tail()}")
            response.raise_for_status()
            return response.json()["access_token"]

        api.token = wait("api-server login", login)
        # the execution API (what task processes call) builds itself on its first request, which can take
        # longer than a task's client timeout on a busy machine: warm it while the DAGs are being parsed
        requests.get(f"{api.base}/execution/health", timeout=120)
        from looksync.airflow.pools import ensure_pools_api, pool_specs

        # twice: the second call must find the pool as wanted and change nothing (idempotent setup)
        pools = [*ensure_pools_api(api.base, api.token, pool_specs(2)), *ensure_pools_api(api.base, api.token, pool_specs(2))]

        def dags_listed() -> list[str] | None:
            dags = sorted(d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"])
            errors = api.call("GET", "/api/v2/importErrors")
            if errors["total_entries"]:
                raise StandaloneCheckError(f"import errors: {json.dumps(errors['import_errors'])[:3000]}\n{tail()}")
            return dags if set(expected_dags) <= set(dags) else None

        dags = wait("dags listed", dags_listed)
        api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        run_id = run["dag_run_id"]

        def finished() -> dict | None:
            current = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if current["state"] == "failed":
                states = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
                summary = {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in states["task_instances"]}
                logs = []
                for task_log in sorted((home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").glob("task_id=*/**/*.log")):
                    lines = task_log.read_text(errors="replace").splitlines()[-15:]
                    logs.append(f"--- {task_log.relative_to(home)} ---\n" + "\n".join(line[:400] for line in lines))
                raise StandaloneCheckError(f"run {run_id} failed: tasks {summary}\n" + "\n".join(logs) + f"\n{tail(30)}")
            return current if current["state"] == "success" else None

        run = wait("run success", finished, interval=2.0)
        instances = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        tasks = {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in instances}
        xcom = {}
        for t in instances:
            entry = api.call(
                "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{t['task_id']}/xcomEntries/return_value"
                f"?map_index={t['map_index']}&deserialize=true", ok=(200, 404),
            )  # fmt: skip
            if entry and "value" in entry:
                xcom[f"{t['task_id']}[{t['map_index']}]"] = entry["value"]
        result = StandaloneResult(port=port, home=str(home), dags=dags, run=run, tasks=tasks, xcom=xcom,
                                  seconds=seconds, pids=[], pools=pools)  # fmt: skip
    except BaseException as exc:  # a failed step, a timeout, Ctrl-C: stop everything, keep the first error
        left = stop_tree(proc, seen)
        log.close()
        if left:
            exc.add_note(f"processes still running after SIGKILL: {left}")
        raise
    left = stop_tree(proc, seen)
    log.close()
    seconds["stopped"] = round(time.monotonic() - started, 1)
    result.pids = sorted(seen | {proc.pid})
    if left:
        raise StandaloneCheckError(f"processes still running after SIGKILL: {left}\n{tail()}")
    return result


@dataclass
class TinyBackfill:
    """A dry-run backfill of a tiny generated sample: one vendor, images served on loopback, tiny random CLIP."""

    conf: dict[str, Any]
    env: dict[str, str]
    vendor: str
    products: int
    close: Callable[[], None]


def tiny_backfill(workdir: Path, redis_url: str, key_prefix: str) -> TinyBackfill:
    from embeddings import save_random_checkpoint
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample

    server = serve_sample(workdir / "sample", port=0)
    manifest = generate_sample(workdir / "sample", size=8, seed=2, image_base_url=server.url, n_looks=0)
    checkpoint = save_random_checkpoint("LookSync-Tiny", workdir / "tiny.pt", seed=5)
    vendor, feed = next(iter(manifest.feeds.items()))
    conf = {"vendors": [vendor], "feeds": [str(feed)], "force_reembed": False, "clip_model": None,
            "clip_weights": None, "dry_run": True}  # fmt: skip
    env = {"LOOKSYNC_DATA_DIR": str(workdir / "data"), "LOOKSYNC_CLIP_MODEL": "LookSync-Tiny",
           "LOOKSYNC_CLIP_WEIGHTS": str(checkpoint), "LOOKSYNC_DEVICE": "cpu", "LOOKSYNC_FETCH_ALLOW_PRIVATE": "true",
           "LOOKSYNC_INDEX_BACKEND": "embedded", "LOOKSYNC_AIRFLOW_RETRIES": "0", "LOOKSYNC_REDIS_URL": redis_url,
           "LOOKSYNC_QUEUE_STREAM": f"{key_prefix}:updates", "LOOKSYNC_ATTRIBUTES_PREFIX": f"{key_prefix}:attr"}  # fmt: skip
    return TinyBackfill(conf, env, vendor, manifest.product_counts[vendor], server.close)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="looksync-standalone-") as tmp:
        redis_url = os.environ.get("LOOKSYNC_REDIS_URL", "redis://127.0.0.1:6379/0")
        sample = tiny_backfill(Path(tmp), redis_url, f"looksync-standalone:{secrets.token_hex(4)}")
        try:
            result = run_standalone_check(sample.conf, sample.env, home=Path(tmp) / "airflow")
        except StandaloneCheckError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            sample.close()
    print(json.dumps({"dags": result.dags, "run": result.run["dag_run_id"], "state": result.run["state"],
                      "tasks": result.tasks, "seconds": result.seconds}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
