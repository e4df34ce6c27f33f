"""The factory: architecture + weights source -> a ready ``ClipEncoder``.

Loading is explicit and lazy (torch and open_clip are imported here, inside the functions), so importing
``embeddings`` stays cheap for Airflow DAG files. Weights never fall back silently: a source that cannot
be fetched, verified or loaded is a ``WeightsError``; random weights come only from ``random:<seed>``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embeddings.encoder import ClipEncoder
from embeddings.errors import EmbeddingsError, WeightsError
from embeddings.registry import check_model, model_config, register_with_open_clip
from embeddings.weights import ResolvedWeights, random_weights, resolve_weights

if TYPE_CHECKING:
    import torch

    from looksync.settings import Settings

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; an explicit ``cuda`` without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmbeddingsError(f"device {device!r} requested but torch {torch.__version__} sees no CUDA device")
    if not (device == "cpu" or device.startswith("cuda")):
        raise EmbeddingsError(f"device {device!r}: expected auto, cpu or cuda[:n]")
    return device


def create_clip(model: str, weights: ResolvedWeights, device: str = "cpu") -> tuple[torch.nn.Module, Any, Any]:
    """Build (model, inference preprocess, tokenizer) with open_clip, loading the resolved weights."""
    import open_clip
    import torch

    register_with_open_clip()
    kwargs: dict[str, Any] = dict(
        pretrained=str(weights.checkpoint) if weights.checkpoint else None,
        device=device,
        force_quick_gelu=weights.quick_gelu,  # a tag's weights were trained with it; the wrong GELU degrades silently
        image_mean=weights.preprocess.get("mean"),
        image_std=weights.preprocess.get("std"),
        image_interpolation=weights.preprocess.get("interpolation"),
        image_resize_mode=weights.preprocess.get("resize_mode"),
    )
    try:
        if weights.seed is not None:
            with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
                torch.manual_seed(weights.seed)
                clip, _, preprocess = open_clip.create_model_and_transforms(model, **kwargs)
        else:
            clip, _, preprocess = open_clip.create_model_and_transforms(model, **kwargs)
    except Exception as exc:  # torch.load / safetensors / load_state_dict raise many types for "bad file"
        raise WeightsError(f"{weights.checkpoint or weights.source}: cannot load as {model} weights: {exc}") from exc
    return clip, preprocess, open_clip.get_tokenizer(model)


def load_encoder(
    model: str,
    weights: str,
    *,
    device: str = "auto",
    threads: int | None = None,
    cache_dir: Path | None = None,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    draft_decode: bool = False,
    runtime: str = "torch",
) -> ClipEncoder:
    """The one factory: ``load_encoder("ViT-H-14", "laion2b_s32b_b79k")``, ``load_encoder("LookSync-Tiny", "ckpt.pt")``,
    ``load_encoder(m, "s3://bucket/key.pt#sha256=...")`` or ``load_encoder(m, "random:0")``.

    ``threads``: torch's CPU thread count (process-wide); ``workers``: image preprocess threads
    (None: one per core; 0: none, preprocess inline); ``draft_decode``: reduced-scale JPEG decoding;
    ``runtime``: what runs the towers on the CPU, ``torch`` (the reference), ``onnx`` or ``onnx-int8``
    (``embeddings.runtime``: exported once per model id under ``<cache_dir>/onnx``, checked against torch)."""
    check_model(model)  # UnknownModel before any download (cheap: open_clip is not imported for it)
    resolved = resolve_weights(
        model, weights, cache_dir=cache_dir, s3_endpoint_url=s3_endpoint_url, s3_region=s3_region
    )
    config = model_config(model)
    device = resolve_device(device)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    clip, preprocess, tokenizer = create_clip(model, resolved, device)
    encoder = ClipEncoder(
        clip,
        preprocess,
        tokenizer,
        name=model,
        model_id=f"{model}@{resolved.digest}",
        device=device,
        dim=int(config["embed_dim"]),
        batch_size=batch_size,
        workers=workers,
        draft_decode=draft_decode,
    )
    if runtime != "torch":
        from embeddings.runtime import apply_runtime

        apply_runtime(encoder, runtime, cache_dir or Path("~/.cache/looksync").expanduser(), threads=threads)
    log.info("loaded %s from %s on %s (runtime %s)", encoder.model_id, resolved.source, device, encoder.runtime)
    return encoder


def load_encoder_from_settings(settings: Settings) -> ClipEncoder:
    """``load_encoder`` with the CLIP fields of LookSync settings; downloads cache under
    ``clip_cache_dir`` (default ``<data_dir>/models``)."""
    return load_encoder(
        settings.clip_model,
        settings.clip_weights,
        device=settings.device,
        threads=settings.torch_threads,
        batch_size=settings.embed_batch_size,
        workers=settings.embed_workers,
        draft_decode=settings.embed_draft_decode,
        runtime=settings.clip_runtime,
        **_weights_options(settings),
    )


def resolve_weights_from_settings(settings: Settings) -> ResolvedWeights:
    """The configured weights fetched and verified (or a ``WeightsError`` / ``UnknownModel``) without
    building a model: entry points call it to fail fast, and to download once, before forking workers."""
    check_model(settings.clip_model)
    return resolve_weights(settings.clip_model, settings.clip_weights, **_weights_options(settings))


def _weights_options(settings: Settings) -> dict[str, Any]:
    return {
        "cache_dir": settings.clip_cache_dir or settings.data_dir / "models",
        "s3_endpoint_url": settings.s3_endpoint_url,
        "s3_region": settings.s3_region,
    }


def save_random_checkpoint(model: str, path: Path, seed: int = 0) -> Path:
    """Build ``model`` with seeded random weights and save its state_dict to ``path`` (``.safetensors``
    or a torch file), loadable as a checkpoint-path weights source. Returns ``path``."""
    import torch

    model_config(model)
    clip, _, _ = create_clip(model, random_weights(f"random:{seed}"), "cpu")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    state = {k: v.contiguous() for k, v in clip.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(partial))
    else:
        torch.save(state, partial)
    partial.replace(path)
    return path
