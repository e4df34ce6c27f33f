"""The model registry: CLIP architectures as data.

LookSync's own architectures are JSON files in ``embeddings/model_configs/`` in open_clip's config
format (``embed_dim``, ``vision_cfg``, ``text_cfg``); open_clip's bundled configs (ViT-B-32, ViT-H-14, ...)
are available too. ``register_with_open_clip()`` adds our directory to open_clip's registry, so
``open_clip.create_model_and_transforms("LookSync-Tiny")`` works after it.

This module imports neither torch nor open_clip at import time (Airflow DAG files import this
package); ``list_models()`` imports open_clip only when asked for its names too.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

from embeddings.errors import UnknownModel

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"


@cache
def local_model_configs() -> dict[str, dict[str, Any]]:
    """LookSync's architectures: name (file stem) -> open_clip model config."""
    configs = {}
    for path in sorted(MODEL_CONFIG_DIR.glob("*.json")):
        config = json.loads(path.read_text(encoding="utf-8"))
        missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in config]
        if missing:
            raise UnknownModel(f"{path}: not a model config, missing {', '.join(missing)}")
        configs[path.stem] = config
    return configs


_registered = False


def register_with_open_clip() -> None:
    """Add LookSync's config directory to open_clip's registry (once per process)."""
    global _registered
    if _registered:
        return
    import open_clip

    open_clip.add_model_config(MODEL_CONFIG_DIR)
    _registered = True


def list_models(include_open_clip: bool = True) -> list[str]:
    """Architecture names: LookSync's first, then open_clip's (which imports open_clip and torch)."""
    names = list(local_model_configs())
    if include_open_clip:
        import open_clip

        names += [name for name in open_clip.list_models() if name not in names]
    return names


def check_model(name: str) -> None:
    """``name`` is a registered architecture, or UnknownModel. Cheap for the common cases: LookSync's own
    configs, or an open_clip config file found on disk without importing open_clip (and torch)."""
    if name in local_model_configs():
        return
    spec = importlib.util.find_spec("open_clip")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "model_configs" / f"{name}.json").is_file():
            return
    model_config(name)  # the full lookup: open_clip's registry, UnknownModel naming the known ones


def model_config(name: str) -> dict[str, Any]:
    """The architecture's config (a copy), or UnknownModel listing the known names."""
    if name in local_model_configs():
        return json.loads(json.dumps(local_model_configs()[name]))
    known = list_models()
    if name not in known:  # also refuses open_clip's 'hf-hub:'/'local-dir:' schemas, which would download
        raise UnknownModel(f"{name}: not in the registry; known: {', '.join(known)}")
    import open_clip

    return open_clip.get_model_config(name)
