"""Weights sources: where a model's weights come from, resolved to a local checkpoint file.

A model spec is an architecture (see ``registry``) plus one weights string:

- ``<tag>``: an open_clip pretrained tag of that architecture (e.g. ``laion2b_s32b_b79k`` for ViT-H-14),
  fetched by open_clip's own download and cache code into ``cache_dir``. A copy already in that cache is
  used without asking the hub; otherwise the hub's host (``HF_ENDPOINT``, through the environment's proxy)
  must accept a connection within ``HUB_PROBE_TIMEOUT_S``, or the load fails at once naming the offline
  sources below, instead of retrying for a minute inside huggingface_hub. ``HF_HUB_OFFLINE=1``: offline;
- ``<path>``: a local state_dict checkpoint (``.pt``/``.pth``/``.bin``/``.safetensors``), as open_clip saves it;
- ``s3://bucket/key.pt#sha256=<hex>`` or ``s3://bucket/key.pt``: downloaded once with boto3 into
  ``<cache_dir>/s3/<bucket>/<key>`` and verified. The expected sha256 comes from the URI fragment when
  given; otherwise from a ``<key>.sha256`` object beside the checkpoint (``sha256sum`` format: the first
  word is the hex digest), read on every load so a replaced checkpoint is noticed. With no sha256 at all
  the load is refused. A cached copy whose hash matches is used without downloading; the endpoint comes
  from ``s3_endpoint_url`` (S3-compatible stores), credentials from boto3's usual chain;
- ``random:<seed>``: seeded random weights, only when asked for explicitly (tests, samples).

Each source is one small function returning ``ResolvedWeights``; nothing here builds a model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from embeddings.errors import WeightsError

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/looksync/clip").expanduser()
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
# name lookup + TCP connect to the weights' host; a machine that cannot do both in this time is offline
HUB_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ResolvedWeights:
    kind: Literal["pretrained", "file", "s3", "random"]
    source: str  # as the caller wrote it, for messages
    digest: str  # the part of the model id after '@'
    checkpoint: Path | None = None  # None only for random weights
    seed: int | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)  # a pretrained tag's mean/std/interpolation
    quick_gelu: bool = False  # a pretrained tag trained with QuickGELU


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def short_digest(hex_digest: str) -> str:
    return hex_digest[:12]


def resolve_weights(
    model: str,
    weights: str,
    *,
    cache_dir: Path | None = None,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
) -> ResolvedWeights:
    """Pick the source named by ``weights`` and resolve it to a checkpoint (or a seed)."""
    if not weights:
        raise WeightsError(
            f"{model}: no weights given; name a pretrained tag, a checkpoint path, s3:// URI or random:<seed>"
        )
    if weights.startswith("random:"):
        return random_weights(weights)
    if weights.startswith("s3://"):
        return s3_weights(weights, cache_dir=cache_dir, endpoint_url=s3_endpoint_url, region=s3_region)
    _fail_fast_offline(model, weights, cache_dir)
    tags = pretrained_tags(model)
    if weights in tags:
        return pretrained_weights(model, weights, cache_dir=cache_dir)
    return file_weights(weights, model=model, known_tags=tags)


def pretrained_tags(model: str) -> list[str]:
    """open_clip's pretrained tags for an architecture (none for LookSync's own)."""
    from embeddings.registry import local_model_configs

    if model in local_model_configs():
        return []
    import open_clip

    return open_clip.list_pretrained_tags_by_model(model)


def random_weights(weights: str) -> ResolvedWeights:
    seed_text = weights.removeprefix("random:")
    try:
        seed = int(seed_text)
    except ValueError:
        raise WeightsError(f"{weights}: the seed after 'random:' must be an integer, got {seed_text!r}") from None
    return ResolvedWeights(kind="random", source=weights, digest=f"random:{seed}", seed=seed)


def file_weights(weights: str | Path, *, model: str = "", known_tags: list[str] | None = None) -> ResolvedWeights:
    path = Path(weights).expanduser()
    if not path.is_file():
        if known_tags is not None and os.sep not in str(weights) and not path.suffix:
            tags = ", ".join(known_tags) or "none"
            raise WeightsError(f"{weights}: not a pretrained tag of {model} (known tags: {tags}) nor a checkpoint file")
        raise WeightsError(f"{path}: checkpoint file not found")
    return ResolvedWeights(kind="file", source=str(weights), digest=short_digest(sha256_file(path)), checkpoint=path)


def pretrained_weights(model: str, tag: str, *, cache_dir: Path | None = None) -> ResolvedWeights:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    path = cached_pretrained(cfg, cache_dir)
    if path is None:
        _require_download_host(model, tag, cfg, cache_dir)
        try:
            path = open_clip.pretrained.download_pretrained(cfg, cache_dir=str(cache_dir) if cache_dir else None)
        except Exception as exc:  # open_clip/huggingface_hub raise many types for one cause: not fetchable
            raise WeightsError(
                f"{model} pretrained {tag!r}: cannot fetch weights (cache_dir={cache_dir}): {exc}"
            ) from exc
    else:
        log.info("weights %s:%s: using cached %s", model, tag, path)
    if not path or not Path(path).is_file():
        raise WeightsError(f"{model} pretrained {tag!r}: open_clip returned no checkpoint file ({path!r})")
    return ResolvedWeights(
        kind="pretrained",
        source=f"{model}:{tag}",
        digest=short_digest(hashlib.sha256(tag.encode()).hexdigest()),
        checkpoint=Path(path),
        preprocess={k: cfg[k] for k in _PREPROCESS_KEYS if k in cfg},
        quick_gelu=bool(cfg.get("quick_gelu", False)),
    )


def _hub_file(cfg: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(repo id, file names in the order open_clip tries them) when open_clip fetches ``cfg`` from the hub."""
    from open_clip import pretrained

    if not (pretrained.has_hf_hub() and cfg.get("hf_hub")):
        return None
    repo_id, filename = os.path.split(cfg["hf_hub"])
    filename = filename or pretrained.HF_WEIGHTS_NAME
    # open_clip's own (private) helpers, so the lookup order cannot drift from download_pretrained_from_hf's
    safe = list(pretrained._get_safe_alternatives(filename)) if pretrained._has_safetensors else []
    return repo_id, [*safe, filename]


def cached_pretrained(cfg: dict[str, Any], cache_dir: Path | None) -> str | None:
    """The checkpoint of a pretrained cfg when it is already on disk (nothing is fetched): a hub file in
    huggingface_hub's cache layout under ``cache_dir`` (None: its default cache), or open_clip's url
    download. A url download is returned through open_clip, which checks its sha256 prefix."""
    import open_clip

    if "file" in cfg:
        return cfg["file"]
    hub = _hub_file(cfg)
    if hub is not None:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filenames = hub
        for filename in filenames:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
            if isinstance(found, str):  # else None (unknown) or a "known missing" sentinel
                return found
        return None
    url = cfg.get("url", "")
    target = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(url)
    if url and target.is_file():
        return open_clip.pretrained.download_pretrained(cfg, cache_dir=str(cache_dir) if cache_dir else None)
    return None


def _require_download_host(model: str, tag: str, cfg: dict[str, Any], cache_dir: Path | None) -> None:
    """Raise ``WeightsError`` at once, naming the offline weights sources, when the download host of an
    uncached pretrained tag cannot be reached (or ``HF_HUB_OFFLINE`` is set)."""
    from huggingface_hub import constants

    hub = _hub_file(cfg)
    url = f"{constants.ENDPOINT}/{hub[0]}" if hub else cfg.get("url", "")
    why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else unreachable(url)
    if why is None:
        return
    raise offline_error(model, tag, cache_dir or constants.HF_HUB_CACHE, url, why)


OFFLINE_SOURCES = (
    "Offline, set LOOKSYNC_CLIP_WEIGHTS to a local checkpoint file (.pt/.pth/.bin/.safetensors of the "
    "LOOKSYNC_CLIP_MODEL architecture), to s3://bucket/key.pt#sha256=<hex>, or to random:<seed> (plumbing only: "
    "the vectors mean nothing); or copy the tag's hub files into the cache (LOOKSYNC_CLIP_CACHE_DIR, "
    "huggingface_hub layout) from a machine that is online. `make demo` fine-tunes LookSync-Tiny offline and "
    "writes its checkpoint under var/demo/models."
)


def offline_error(model: str, tag: str, cache: Path | str, url: str, why: str) -> WeightsError:
    return WeightsError(
        f"{model} pretrained {tag!r}: not in the weights cache {cache} and the model hub {url} cannot be "
        f"reached ({why}). {OFFLINE_SOURCES}"
    )


def _fail_fast_offline(model: str, weights: str, cache_dir: Path | None) -> None:
    """Before open_clip is imported (seconds of torch and torchvision): ``weights`` that can only be a
    pretrained tag (no path, no file suffix, no such file), an empty weights cache and an unreachable hub
    (or ``HF_HUB_OFFLINE``) cannot end in a checkpoint, so say so now. Anything else, a cache with files
    in it included, takes the exact path (open_clip's table, the cache lookup of the tag)."""
    from embeddings.registry import local_model_configs

    path = Path(weights).expanduser()
    if model in local_model_configs() or os.sep in weights or path.suffix or path.exists():
        return
    from huggingface_hub import constants

    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    if cache.is_dir() and any(cache.iterdir()):
        return
    why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else unreachable(constants.ENDPOINT)
    if why is not None:
        raise WeightsError(
            f"{model} weights {weights!r}: no such checkpoint file, and as a pretrained tag it cannot be fetched: "
            f"the weights cache {cache} is empty and the model hub {constants.ENDPOINT} cannot be reached ({why}). "
            f"{OFFLINE_SOURCES}"
        )


def unreachable(url: str, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why ``url``'s host (or the proxy the environment names for it) does not accept a TCP connection
    within ``timeout_s``, or None when it does. The name lookup has no timeout of its own, so the
    connect runs in a daemon thread and is abandoned when the time is up."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return "no host in the url"
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or host, proxy_parts.port or 80
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port}: {exc}")

    probe = threading.Thread(target=connect, name="weights-host-probe", daemon=True)
    probe.start()
    probe.join(timeout_s)
    return outcome[0] if outcome else f"{host}:{port}: no connection within {timeout_s:g} s"


def parse_s3_uri(uri: str) -> tuple[str, str, str | None]:
    """``s3://bucket/key#sha256=<hex>`` -> (bucket, key, sha256 or None)."""
    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if parts.scheme != "s3" or not bucket or not key:
        raise WeightsError(f"{uri}: expected s3://bucket/key[#sha256=<hex>]")
    expected = None
    if parts.fragment:
        name, _, value = parts.fragment.partition("=")
        if name != "sha256":
            raise WeightsError(f"{uri}: unknown fragment {parts.fragment!r}; expected #sha256=<hex>")
        expected = _checked_sha256(uri, value)
    return bucket, key, expected


def _checked_sha256(uri: str, value: str) -> str:
    value = value.strip().lower()
    if not _SHA256.match(value):
        raise WeightsError(f"{uri}: sha256 must be 64 hex digits, got {value!r}")
    return value


def _s3_client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region)


def _sidecar_sha256(client: Any, uri: str, bucket: str, key: str) -> str:
    try:
        body = client.get_object(Bucket=bucket, Key=key + ".sha256")["Body"].read()
    except Exception as exc:  # botocore: ClientError (missing), EndpointConnectionError, NoCredentialsError, ...
        raise WeightsError(
            f"{uri}: no sha256 to verify against: add #sha256=<hex> to the URI or put "
            f"s3://{bucket}/{key}.sha256 beside it ({exc})"
        ) from exc
    words = body.decode("utf-8", errors="replace").split()
    return _checked_sha256(f"s3://{bucket}/{key}.sha256", words[0] if words else "")


def _download_verified(client: Any, uri: str, bucket: str, key: str, target: Path, expected: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.part-{os.getpid()}")
    try:
        client.download_file(bucket, key, str(partial))
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise WeightsError(f"{uri}: download failed: {exc}") from exc
    got = sha256_file(partial)
    if got != expected:
        partial.unlink(missing_ok=True)
        raise WeightsError(f"{uri}: sha256 mismatch (expected {expected}, got {got})")
    os.replace(partial, target)  # atomic: a concurrent reader sees the old file or the verified new one


def s3_weights(
    uri: str, *, cache_dir: Path | None = None, endpoint_url: str | None = None, region: str | None = None
) -> ResolvedWeights:
    bucket, key, expected = parse_s3_uri(uri)
    target = (cache_dir or DEFAULT_CACHE_DIR) / "s3" / bucket / key
    client = None
    if expected is None:
        client = _s3_client(endpoint_url, region)
        expected = _sidecar_sha256(client, uri, bucket, key)
    if target.is_file():
        if sha256_file(target) == expected:
            log.info("weights %s: using cached %s", uri, target)
            return ResolvedWeights(kind="s3", source=uri, digest=short_digest(expected), checkpoint=target)
        log.warning("weights %s: cached %s does not match sha256 %s; downloading again", uri, target, expected)
    client = client or _s3_client(endpoint_url, region)
    log.info("weights %s: downloading to %s", uri, target)
    _download_verified(client, uri, bucket, key, target, expected)
    return ResolvedWeights(kind="s3", source=uri, digest=short_digest(expected), checkpoint=target)
