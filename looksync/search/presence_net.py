"""A small pixel CNN for layer presence: it reads each placed layer's main region as pixels (a 32 x 32 crop and
the box's place in the look), a shared conv trunk and one logit per layer (the crop's own layer's is read).

The presence heads (``looksync/search/detection.py``) read the tiny CLIP model's crop vectors, which hardly carry
the small layers (bag, eyewear) nor a one-piece against a top and a skirt; trained on generated looks, the CNN
reads the region's pixels directly. It is trained inside ``looksync heads train --net-looks N`` on looks of its
own, which are only placed (never embedded), so it can see many more looks than the heads; the heads blend its
logit with theirs (``looksync/search/detection_training.py``). On in the default recipe with 1,200 looks
(``looksync/search/heads_recipe.py``: presence precision / recall 0.820 / 0.910 without it, 0.852 / 0.902 with 600
looks, 0.856 / 0.929 with 1,200 on the eval sample). Figures: docs/evaluation.md, "a pixel CNN for layer presence"
and "a stronger presence CNN".

The weights are plain arrays (``to_arrays`` / ``from_arrays``), saved in the heads' own ``.npz`` (no pickle).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

NET_SIZE = 32  # the crop's side in pixels
NET_WIDTH = 16  # channels of the first conv layer (then 2x, 4x, 4x)
GEOMETRY = 6  # the box's x0, y0, x1, y1 (share of the look), 4 x its width, log of its aspect


def region_crops(pixels: Any, boxes: dict[str, list[tuple[int, int, int, int]]], layers: Sequence[str],
                 size: int = NET_SIZE) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each of ``layers``' main box cut from ``pixels`` (a PIL image) and resized to ``size`` x ``size`` (uint8,
    (n, size, size, 3)), and the boxes' geometry (``geometry``), in ``layers``' order."""
    width, height = pixels.size
    image = pixels if pixels.mode == "RGB" else pixels.convert("RGB")
    # resized straight from the look (``box=``): no copy of each region first
    crops = [np.asarray(image.resize((size, size), _box_filter(), box=tuple(boxes[layer][0])), dtype=np.uint8)
             for layer in layers]  # fmt: skip
    rel = np.array([[x0 / width, y0 / height, x1 / width, y1 / height] for x0, y0, x1, y1 in (boxes[la][0] for la in layers)],
                   dtype=np.float32).reshape(-1, 4)  # fmt: skip
    return (np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)), geometry(rel)


def _box_filter() -> Any:
    from PIL import Image

    return Image.Resampling.BOX


def geometry(boxes: np.ndarray) -> np.ndarray:
    """(n, 4) boxes as shares of the look -> (n, ``GEOMETRY``) features."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return np.stack([b[:, 0], b[:, 1], b[:, 2], b[:, 3], w * 4, np.log(np.maximum(w, 1e-3) / np.maximum(h, 1e-3))],
                    axis=1).astype(np.float32)  # fmt: skip


def _module(n_layers: int, width: int) -> Any:
    import torch
    from torch import nn

    class PresNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = width
            self.trunk = nn.Sequential(
                nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(),
            )  # fmt: skip
            self.head = nn.Sequential(nn.Linear(8 * w + GEOMETRY, 64), nn.ReLU(), nn.Linear(64, n_layers))

        def forward(self, x: Any, g: Any, layer: Any) -> Any:
            h = self.trunk(x)
            h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3)), g], dim=1)
            return self.head(h).gather(1, layer[:, None])[:, 0]

    return PresNet()


def with_weights(module: Any, state: dict[str, np.ndarray]) -> Any:
    """``module`` (a CNN of this module's or ``gender_net``'s) with the weights of ``state``, in eval mode."""
    import torch

    module.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()})
    return module.eval()


def state_arrays(state: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """A CNN's weights as the heads file's arrays, each named ``prefix/name``."""
    return {f"{prefix}/{k}": np.asarray(v, dtype=np.float32) for k, v in state.items()}


def arrays_under(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The weights ``state_arrays`` saved under ``prefix``."""
    return {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def _pixels(crops: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)


@dataclass
class PresenceNet:
    """One trained CNN: the layers its logits are for (their order), its first conv's width, its weights."""

    layers: list[str]
    width: int
    state: dict[str, np.ndarray]
    _model: Any = None
    meta: dict[str, Any] = field(default_factory=dict)  # training figures (looks, crops, seconds)

    def model(self) -> Any:
        if self._model is None:
            self._model = with_weights(_module(len(self.layers), self.width), self.state)
        return self._model

    def logits(self, crops: np.ndarray, geo: np.ndarray, layers: Sequence[str]) -> np.ndarray:
        """Each crop's logit for its own layer (``layers[i]`` for ``crops[i]``); a layer the CNN has no logit for
        reads 0."""
        import torch

        index = [self.layers.index(layer) if layer in self.layers else -1 for layer in layers]
        out = np.zeros(len(index))
        known = [i for i, j in enumerate(index) if j >= 0]
        if not known:
            return out
        with torch.no_grad():
            z = self.model()(_pixels(crops[known]), torch.from_numpy(np.asarray(geo, dtype=np.float32)[known]),
                             torch.tensor([index[i] for i in known], dtype=torch.long))  # fmt: skip
        out[known] = z.numpy().astype(np.float64)
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return state_arrays(self.state, prefix)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str, layers: Sequence[str], width: int) -> PresenceNet:
        state = arrays_under(arrays, prefix)
        if not state:
            raise ValueError(f"no presence CNN weights under {prefix!r}")
        return cls(list(layers), int(width), state)


def mean_logits(nets: Sequence[PresenceNet], crops: np.ndarray, geo: np.ndarray, layers: Sequence[str]) -> np.ndarray:
    """The mean of ``nets``' logits (the cross-fitted CNNs at query time)."""
    return np.mean([net.logits(crops, geo, layers) for net in nets], axis=0) if nets else np.zeros(len(layers))


def train_net(crops: np.ndarray, geo: np.ndarray, layer_index: np.ndarray, labels: np.ndarray, layers: Sequence[str],
              *, epochs: int = 20, width: int = NET_WIDTH, batch: int = 64, lr: float = 3e-3, seed: int = 0,
              threads: int | None = None) -> PresenceNet:  # fmt: skip
    """One CNN fitted on ``crops`` (uint8 (n, s, s, 3)) with their ``geo`` and the index of each one's layer in
    ``layers``, to ``labels`` (1: the layer's garment is in the look): binary cross-entropy on the crop's own
    layer's logit, AdamW with a one-cycle learning rate, half the crops mirrored at each step (mirrored looks)."""
    import torch
    from torch import nn

    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = _module(len(layers), width)
        x, g = _pixels(crops), torch.from_numpy(np.asarray(geo, dtype=np.float32))
        li = torch.from_numpy(np.asarray(layer_index, dtype=np.int64))
        y = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        steps = max(1, epochs * ((len(y) + batch - 1) // batch))
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
        loss_fn = nn.BCEWithLogitsLoss()
        model.train()
        for _ in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), batch):
                idx = torch.from_numpy(order[start : start + batch])
                xb, gb = x[idx], g[idx].clone()
                mirror = torch.from_numpy(rng.random(len(idx)) < 0.5)
                xb = torch.where(mirror[:, None, None, None], xb.flip(3), xb)
                x0 = gb[mirror, 0].clone()
                gb[mirror, 0], gb[mirror, 2] = 1 - gb[mirror, 2], 1 - x0
                loss = loss_fn(model(xb, gb, li[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
        model.eval()
    finally:
        torch.set_num_threads(threads_before)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return PresenceNet(list(layers), width, state, model)
