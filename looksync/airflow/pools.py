"""One-time (and repeatable) Airflow setup for LookSync: the pools the DAGs name.

``looksync airflow setup`` runs it, against the local Airflow (the ``airflow pools`` commands, same
``AIRFLOW_HOME`` as the scheduler) or a running API server (``--api-url``: the REST API's
``/api/v2/pools``, as ``infra/airflow_standalone_check.py`` does). Idempotent: a pool that exists with
the wanted slots is left alone, one with other slots or description is updated, a missing one created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looksync.airflow.dag_support import EMBEDDING_POOL


class AirflowSetupError(RuntimeError):
    """Airflow refused or failed a setup step; the message names the step and Airflow's answer."""


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str


def pool_specs(embedding_slots: int = 2) -> list[PoolSpec]:
    """The pools the DAGs use. ``embedding``: concurrent CLIP embedding tasks (``catalog_ingest.embed``,
    ``catalog_backfill.ingest``); size it to the workers' memory, each task holds one model."""
    if embedding_slots < 1:
        raise ValueError(f"embedding_slots must be at least 1, got {embedding_slots}")
    return [PoolSpec(EMBEDDING_POOL, embedding_slots, "CLIP embedding tasks (LookSync)")]


def _action(existing: dict[str, Any] | None, spec: PoolSpec) -> str:
    if existing is None:
        return "created"
    same = int(existing["slots"]) == spec.slots and (existing.get("description") or "") == spec.description
    return "unchanged" if same else "updated"


# --- through the local airflow command ------------------------------------------------------------------


def _airflow(args: list[str], env: dict[str, str] | None, airflow_bin: str | None) -> subprocess.CompletedProcess:
    binary = airflow_bin or str(Path(sys.executable).with_name("airflow"))
    try:
        return subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=240)
    except FileNotFoundError:
        raise AirflowSetupError(
            f"{binary}: no airflow command here; use --api-url to set up through the REST API"
        ) from None


def ensure_pools_cli(
    specs: list[PoolSpec], env: dict[str, str] | None = None, airflow_bin: str | None = None
) -> list[dict]:
    """Create or update each pool with ``airflow pools get/set`` (the local Airflow's metadata DB)."""
    env = env if env is not None else dict(os.environ)
    out = []
    for spec in specs:
        got = _airflow(["pools", "get", spec.name, "-o", "json"], env, airflow_bin)
        existing = None
        if got.returncode == 0:
            rows = json.loads(got.stdout[got.stdout.index("[") :])
            existing = rows[0] if rows else None
        action = _action(existing, spec)
        if action != "unchanged":
            done = _airflow(["pools", "set", spec.name, str(spec.slots), spec.description], env, airflow_bin)
            if done.returncode != 0:
                raise AirflowSetupError(f"airflow pools set {spec.name}: {(done.stderr or done.stdout)[-2000:]}")
        out.append({"name": spec.name, "slots": spec.slots, "action": action})
    return out


# --- through the REST API -------------------------------------------------------------------------------


def api_token(base_url: str, username: str, password: str) -> str:
    """A JWT from the API server (``POST /auth/token``), for ``Authorization: Bearer``."""
    import requests

    response = requests.post(
        f"{base_url.rstrip('/')}/auth/token", json={"username": username, "password": password}, timeout=30
    )
    if response.status_code >= 400:
        raise AirflowSetupError(f"POST /auth/token answered {response.status_code}: {response.text[:500]}")
    return response.json()["access_token"]


def ensure_pools_api(base_url: str, token: str | None, specs: list[PoolSpec]) -> list[dict]:
    """Create or update each pool through ``/api/v2/pools`` (GET, then POST or PATCH)."""
    import requests

    base = base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(method: str, path: str, body: dict | None = None, ok: tuple[int, ...] = (200, 201)):
        response = requests.request(method, base + path, json=body, headers=headers, timeout=30)
        if response.status_code not in ok:
            raise AirflowSetupError(f"{method} {path} answered {response.status_code}: {response.text[:1000]}")
        return response

    out = []
    for spec in specs:
        got = call("GET", f"/api/v2/pools/{spec.name}", ok=(200, 404))
        action = _action(got.json() if got.status_code == 200 else None, spec)
        body = {"name": spec.name, "slots": spec.slots, "description": spec.description}
        if action == "created":
            call("POST", "/api/v2/pools", body)
        elif action == "updated":
            call("PATCH", f"/api/v2/pools/{spec.name}", body)
        out.append({"name": spec.name, "slots": spec.slots, "action": action})
    return out
