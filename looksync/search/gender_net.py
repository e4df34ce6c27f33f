"""A small pixel CNN for the look's gender: it reads the person (the union of the placed layers' main regions, from
the headwear region above the eyes down) and/or the head (the pose detector's face box, widened, else the
head-and-shoulders region) as pixels, one conv trunk per input and one logit (men). The recipe reads the person
alone: on held-out framings it measured best (``GENDER_NET_INPUTS``).

The gender head (``looksync/search/detection.py``) reads the tiny CLIP model's vectors of the look and of its head
crops, which a 32 px crop vector hardly tells apart by hair style, beard or body shape (how the generated figures
show gender: ``looksync/sample/figure.py``); trained on generated looks, the CNN reads those pixels directly. It is
trained inside ``looksync heads train`` on the presence CNN's own looks (``--net-looks``: placed, never embedded),
and the heads blend its logit with the gender head's (``looksync/search/detection_training.py``). Figures:
docs/evaluation.md, "a pixel CNN for gender".

The weights are plain arrays (``to_arrays`` / ``from_arrays``), saved in the heads' own ``.npz`` (no pickle).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from looksync.search.detection import head_and_shoulders_box
from looksync.search.presence_net import _box_filter, _pixels, arrays_under, state_arrays, with_weights

log = logging.getLogger(__name__)

HEAD_SIZE = 32  # the head crop's side in pixels
PERSON_SIZE = (32, 64)  # the person crop's width and height in pixels (a standing figure is tall)
GENDER_NET_WIDTH = 16  # channels of each trunk's first conv layer (then 2x, 4x, 4x)
HEAD_MARGIN = 0.25  # the face box widened by this share of its size on each side (long hair, beard, neck)
INPUTS = ("head", "person")  # what a CNN can read; a trained one reads some of them (``GenderNet.inputs``)
# the training recipe (``looksync/search/detection_training.py``, ``train_gender_net``): epochs, copies averaged at
# query time, and each look's crops drawn once as placed and GENDER_NET_DRAWS more times with each box moved and
# scaled by up to GENDER_NET_JITTER of its size
GENDER_NET_EPOCHS, GENDER_NET_COPIES, GENDER_NET_DRAWS, GENDER_NET_JITTER = 20, 1, 3, 0.1
# the CNN alone, trained on 600 train-split looks (seed 404), on 200 held-out-framing looks of seeds 11 / 13: person
# 0.98 / 0.98, head 0.935 / 0.94, both 0.92 / 0.93 (0.975 / 0.955 without the jittered draws)
GENDER_NET_INPUTS = ("person",)

Box = tuple[int, int, int, int]


def head_box(boxes: dict[str, list[Box]], face: Box | None, size: tuple[int, int], margin: float = HEAD_MARGIN) -> Box | None:
    """The CNN's head region: the face box widened by ``margin`` (clipped to the look), else the head-and-shoulders
    region (``head_and_shoulders_box``), else None."""
    if face is not None:
        x0, y0, x1, y1 = face
        dx, dy = margin * (x1 - x0), margin * (y1 - y0)
        box = (max(0, int(x0 - dx)), max(0, int(y0 - dy)), min(size[0], int(x1 + dx)), min(size[1], int(y1 + dy)))
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
            return box
    return head_and_shoulders_box(boxes)


def person_box(boxes: dict[str, list[Box]]) -> Box | None:
    """The CNN's person region: the union of the placed layers' main boxes (None when none is placed)."""
    mains = [b[0] for b in boxes.values() if b]
    if not mains:
        return None
    return (min(b[0] for b in mains), min(b[1] for b in mains), max(b[2] for b in mains), max(b[3] for b in mains))


def _cut(image: Any, box: Box | None, size: tuple[int, int]) -> np.ndarray:
    if box is None:
        return np.zeros((size[1], size[0], 3), np.uint8)
    return np.array(image.resize(size, _box_filter(), box=tuple(box)), dtype=np.uint8)  # writable: torch.from_numpy warns on a read-only one


def _jittered(box: Box | None, rng: np.random.Generator, share: float, look: tuple[int, int]) -> Box | None:
    """``box`` moved and scaled by up to ``share`` of its size (training crops: the finder's boxes wander too)."""
    if box is None or share <= 0:
        return box
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 + rng.uniform(-share, share) * w, (y0 + y1) / 2 + rng.uniform(-share, share) * h
    s = 1 + rng.uniform(-share, share)
    w, h = max(2.0, w * s), max(2.0, h * s)
    nx0, ny0 = max(0, int(cx - w / 2)), max(0, int(cy - h / 2))
    nx1, ny1 = min(look[0], int(cx + w / 2)), min(look[1], int(cy + h / 2))
    return (nx0, ny0, nx1, ny1) if nx1 - nx0 >= 2 and ny1 - ny0 >= 2 else box


@dataclass
class GenderCrops:
    """The CNN's inputs for n looks: the head and person crops (uint8, (n, h, w, 3)) and whether each was found."""

    head: np.ndarray
    person: np.ndarray
    found: np.ndarray  # (n, 2) float: head found, person found

    @classmethod
    def stack(cls, parts: Sequence[GenderCrops]) -> GenderCrops:
        return cls(np.concatenate([p.head for p in parts]), np.concatenate([p.person for p in parts]),
                   np.concatenate([p.found for p in parts]))  # fmt: skip

    def __len__(self) -> int:
        return len(self.found)

    def take(self, index: Any) -> GenderCrops:
        return GenderCrops(self.head[index], self.person[index], self.found[index])


def look_crops(pixels: Any, boxes: dict[str, list[Box]], face: Box | None, *, jitter: float = 0.0,
               rng: np.random.Generator | None = None, margin: float = HEAD_MARGIN) -> GenderCrops:  # fmt: skip
    """One look's head and person crops, cut from ``pixels`` (a PIL image) at the placement's ``boxes`` and
    ``face``; ``jitter`` > 0 (training): each box moved and scaled by up to that share (``rng``)."""
    image = pixels if pixels.mode == "RGB" else pixels.convert("RGB")
    head, person = head_box(boxes, face, image.size, margin), person_box(boxes)
    if jitter > 0:
        rng = rng or np.random.default_rng(0)
        head, person = _jittered(head, rng, jitter, image.size), _jittered(person, rng, jitter, image.size)
    return GenderCrops(_cut(image, head, (HEAD_SIZE, HEAD_SIZE))[None], _cut(image, person, PERSON_SIZE)[None],
                       np.array([[head is not None, person is not None]], dtype=np.float32))  # fmt: skip


def _trunk(width: int) -> Any:
    from torch import nn

    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(),
    )  # fmt: skip


def _module(inputs: Sequence[str], width: int) -> Any:
    import torch
    from torch import nn

    class GenNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunks = nn.ModuleDict({name: _trunk(width) for name in inputs})
            self.head = nn.Sequential(nn.Linear(8 * width * len(inputs) + 2, 64), nn.ReLU(), nn.Linear(64, 1))

        def forward(self, x: dict[str, Any], found: Any) -> Any:
            parts = []
            for name, trunk in self.trunks.items():
                h = trunk(x[name])
                parts += [h.mean(dim=(2, 3)), h.amax(dim=(2, 3))]
            return self.head(torch.cat([*parts, found], dim=1))[:, 0]

    return GenNet()


def _tensors(crops: GenderCrops, inputs: Sequence[str]) -> tuple[dict[str, Any], Any]:
    import torch

    return {name: _pixels(getattr(crops, name)) for name in inputs}, torch.from_numpy(np.asarray(crops.found, np.float32))


@dataclass
class GenderNet:
    """One trained CNN: what it reads (``INPUTS``), its trunks' first width, its weights."""

    inputs: list[str]
    width: int
    state: dict[str, np.ndarray]
    _model: Any = None
    meta: dict[str, Any] = field(default_factory=dict)  # training figures (looks, seconds)

    def model(self) -> Any:
        if self._model is None:
            self._model = with_weights(_module(self.inputs, self.width), self.state)
        return self._model

    def logits(self, crops: GenderCrops) -> np.ndarray:
        """Each look's logit for ``GENDERS[1]`` (men)."""
        import torch

        if not len(crops):
            return np.zeros(0)
        x, found = _tensors(crops, self.inputs)
        with torch.no_grad():
            return self.model()(x, found).numpy().astype(np.float64)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return state_arrays(self.state, prefix)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str, inputs: Sequence[str], width: int) -> GenderNet:
        state = arrays_under(arrays, prefix)
        if not state:
            raise ValueError(f"no gender CNN weights under {prefix!r}")
        unknown = set(inputs) - set(INPUTS)
        if unknown or not inputs:
            raise ValueError(f"gender CNN inputs {list(inputs)}: known {', '.join(INPUTS)}")
        return cls(list(inputs), int(width), state)


def mean_logits(nets: Sequence[GenderNet], crops: GenderCrops) -> np.ndarray:
    """The mean of ``nets``' logits."""
    return np.mean([net.logits(crops) for net in nets], axis=0) if nets else np.zeros(len(crops))


def train_net(crops: GenderCrops, labels: np.ndarray, *, inputs: Sequence[str] = INPUTS, epochs: int = 20,
              width: int = GENDER_NET_WIDTH, batch: int = 64, lr: float = 3e-3, seed: int = 0,
              threads: int | None = None) -> GenderNet:  # fmt: skip
    """One CNN fitted on ``crops`` to ``labels`` (1: ``GENDERS[1]``, men): binary cross-entropy, classes weighted
    to balance, AdamW with a one-cycle learning rate, half the looks mirrored at each step (mirrored looks)."""
    import torch
    from torch import nn

    inputs = [name for name in INPUTS if name in inputs]
    if not inputs:
        raise ValueError(f"gender CNN inputs: at least one of {', '.join(INPUTS)}")
    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = _module(inputs, width)
        x, found = _tensors(crops, inputs)
        y = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        positives = float(y.sum())
        weight = positives and len(y) - positives and (len(y) - positives) / positives
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight) if weight else None)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        steps = max(1, epochs * ((len(y) + batch - 1) // batch))
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
        model.train()
        for _ in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), batch):
                idx = torch.from_numpy(order[start : start + batch])
                mirror = torch.from_numpy(rng.random(len(idx)) < 0.5)[:, None, None, None]
                xb = {name: torch.where(mirror, v[idx].flip(3), v[idx]) for name, v in x.items()}
                loss = loss_fn(model(xb, found[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
        model.eval()
    finally:
        torch.set_num_threads(threads_before)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return GenderNet(inputs, width, state, model)
