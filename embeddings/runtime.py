"""Inference runtimes for a loaded CLIP model's image and text towers: ``torch`` (the reference), ``onnx``
(ONNX Runtime, fp32) and ``onnx-int8`` (ONNX Runtime with int8 dynamic weight quantisation).

The towers are exported from the torch model itself (``torch.onnx.export``) and cached on disk under
``<cache_dir>/onnx/<model id>/`` (the model id names architecture and weights digest, so other weights
never reuse a file); the next load reuses them. Every ONNX tower is checked against the torch vectors
on a fixed calibration set before it is used: an fp32 export must reproduce them (cosine >= 0.999,
else the tower stays on torch), an int8 one must keep cosine >= ``QUANT_MIN_COSINE`` (0.99, else the
quantisation is refused and the fp32 ONNX tower is used). A refusal is logged and kept in the
encoder's ``runtime_notes`` (shown by the service's ``/readyz``); it is never silent.

ONNX vectors agree with torch's within the gate, so the model id (and so the index's vectors) stays the
same whichever runtime is configured.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embeddings.errors import EmbeddingsError

if TYPE_CHECKING:
    import torch

    from embeddings.encoder import ClipEncoder

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnx", "onnx-int8")
EXPORT_MIN_COSINE = 0.999  # an fp32 export computes the same function: anything lower is a broken export
QUANT_MIN_COSINE = 0.99  # int8 weights: refused below this cosine to the torch vectors
OPSET = 17
GATE_FILE = "gate.json"
# the calibration texts: garment queries of the kind the service embeds
CALIBRATION_TEXTS = [
    "women's navy striped t-shirt", "men's black leather boots", "a red handbag", "blue denim jeans",
    "women's beige trench coat", "white sneakers", "men's grey wool suit", "a gold watch",
]  # fmt: skip

Quantizer = Callable[[Path, Path], None]  # fp32 model file -> int8 model file


def calibration_images(n: int = 8, size: int = 160, seed: int = 0) -> list[Any]:
    """Deterministic RGB images: smooth colour fields (photo-like) and noise, half each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    images = []
    for i in range(n):
        if i % 2 == 0:
            channels = [np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y) + rng.uniform(0, 6))
                        for _ in range(3)]  # fmt: skip
            pixels = (np.stack(channels, axis=-1) * 90 + 128).clip(0, 255).astype(np.uint8)
        else:
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        images.append(Image.fromarray(pixels, "RGB"))
    return images


@dataclass
class TowerChoice:
    """What one tower runs on and why: ``runtime`` is ``torch``, ``onnx`` or ``onnx-int8``;
    ``min_cosine``: the gate's measure for the runtime chosen (None for torch)."""

    runtime: str
    min_cosine: float | None = None
    notes: list[str] = field(default_factory=list)


class OnnxTower:
    """One exported tower on an ONNX Runtime session, called like the torch model's method
    (a torch tensor in, a torch tensor out), so ``ClipEncoder`` runs it unchanged."""

    def __init__(self, path: Path, threads: int | None, input_name: str):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default (one per core)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between ops: on a CPU shared with the request threads (and other processes) spinning
        # threads take the cores the next op needs; measured 6 crops of ViT-B-32 int8 at load 9.5 on 2 cores:
        # 491 ms without spinning, 1150 ms with (min of 5)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.input_name = input_name
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        array = batch.detach().cpu().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


class OnnxTowers:
    """The image and text towers the encoder calls (``encode_image``, ``encode_text``): each an ONNX
    session or, where the gate kept it there, the torch model's own method."""

    def __init__(self, encode_image: Callable, encode_text: Callable):
        self.encode_image = encode_image
        self.encode_text = encode_text


def _tower_module(model: Any, kind: str) -> torch.nn.Module:
    """A torch tower as a module with one input (what ``torch.onnx.export`` traces)."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.encode_image(x) if kind == "image" else self.model.encode_text(x)

    return Tower().eval()


def model_dir(cache_dir: Path, model_id: str) -> Path:
    """Where one model id's ONNX files live (``ViT-B-32@1a2b3c4d5e6f`` -> ``onnx/ViT-B-32@1a2b3c4d5e6f``)."""
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in model_id)
    return Path(cache_dir) / "onnx" / safe


def _publish(build: Callable[[Path], None], target: Path) -> Path:
    """Run ``build(directory)`` into a fresh temporary directory beside ``target``, then move it into
    place in one rename: a crash or a concurrent worker never leaves a half-written model to load."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process published it first: keep theirs
            if not (target / "model.onnx").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "model.onnx"


def example_inputs(encoder: ClipEncoder, kind: str) -> torch.Tensor:
    import torch

    if kind == "image":
        return torch.from_numpy(np.stack([encoder._plan(image, i) for i, image in enumerate(calibration_images())]))
    return encoder.tokenizer(CALIBRATION_TEXTS)


def export_tower(encoder: ClipEncoder, kind: str, directory: Path) -> Path:
    """The fp32 ONNX file of the encoder's ``kind`` tower (``image`` or ``text``), exported once per model id."""
    import torch

    target = directory / f"{kind}.fp32"
    if (target / "model.onnx").is_file():
        return target / "model.onnx"

    def build(tmp: Path) -> None:
        sample = example_inputs(encoder, kind)[:2]
        name = "pixels" if kind == "image" else "tokens"
        log.info("exporting the %s tower of %s to ONNX (%s)", kind, encoder.model_id, directory)
        # with gradients on: under no_grad, nn.MultiheadAttention takes its fused fast path, which the
        # exporter cannot translate
        with torch.inference_mode(False), torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape checks (constant per model)
            torch.onnx.export(
                _tower_module(encoder.model, kind), (sample.to(encoder.device),), str(tmp / "model.onnx"),
                input_names=[name], output_names=["features"], opset_version=OPSET, dynamo=False,
                dynamic_axes={name: {0: "batch"}, "features": {0: "batch"}},
            )  # fmt: skip

    return _publish(build, target)


def quantize_int8(source: Path, target: Path) -> None:
    """int8 dynamic weight quantisation of the MatMul/Gemm weights (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def quantized_tower(source: Path, directory: Path, kind: str, quantize: Quantizer) -> Path:
    target = directory / f"{kind}.int8"
    if (target / "model.onnx").is_file():
        return target / "model.onnx"
    log.info("quantising %s to int8 (%s)", source, target)
    return _publish(lambda tmp: quantize(source, tmp / "model.onnx"), target)


def min_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The lowest row-wise cosine between two batches of (unnormalised) feature rows."""
    a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    b = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def _gate(path: Path, tower: OnnxTower, reference: Callable[[], np.ndarray], inputs: torch.Tensor, model_id: str,
          threshold: float) -> float:  # fmt: skip
    """The tower's min cosine to the torch vectors of ``model_id``, measured once per file (the record
    beside it names the model id and the file's sha256, so a file replaced or copied in is measured again)."""
    from embeddings.weights import sha256_file

    record = path.parent / GATE_FILE
    key = {"model_id": model_id, "sha256": sha256_file(path), "calibration": len(inputs)}
    if record.is_file():
        try:
            saved = json.loads(record.read_text())
            if {k: saved.get(k) for k in key} == key:
                return float(saved["min_cosine"])
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: measure again
    measured = min_cosine(reference(), tower(inputs).numpy())
    record.write_text(json.dumps({**key, "min_cosine": measured, "threshold": threshold}))
    return measured


def choose_tower(
    encoder: ClipEncoder, kind: str, runtime: str, directory: Path, threads: int | None,
    quantize: Quantizer = quantize_int8, quant_min_cosine: float = QUANT_MIN_COSINE,
) -> tuple[Callable, TowerChoice]:  # fmt: skip
    """The callable for one tower under ``runtime`` and what was chosen: int8 when asked and its gate
    passes, else fp32 ONNX when its export reproduces torch, else torch; each step down is a note."""
    import torch

    torch_tower = encoder.model.encode_image if kind == "image" else encoder.model.encode_text
    if runtime == "torch":
        return torch_tower, TowerChoice("torch")
    inputs = example_inputs(encoder, kind)

    @functools.cache
    def reference() -> np.ndarray:  # the torch vectors, computed only when a gate has no record yet
        with torch.inference_mode():
            return torch_tower(inputs.to(encoder.device)).float().cpu().numpy()

    def gated(path: Path, threshold: float) -> tuple[OnnxTower, float]:  # a session on the file, and its gate
        tower = OnnxTower(path, threads, "pixels" if kind == "image" else "tokens")
        return tower, _gate(path, tower, reference, inputs, encoder.model_id, threshold)

    notes: list[str] = []
    fp32_path = export_tower(encoder, kind, directory)
    fp32, fp32_cos = gated(fp32_path, EXPORT_MIN_COSINE)
    if fp32_cos < EXPORT_MIN_COSINE:
        notes.append(f"clip_runtime: {kind} tower ONNX export of {encoder.model_id} disagrees with torch "
                     f"(min cosine {fp32_cos:.4f} < {EXPORT_MIN_COSINE}); {kind} tower runs on torch")  # fmt: skip
        return torch_tower, TowerChoice("torch", None, notes)
    if runtime == "onnx":
        return fp32, TowerChoice("onnx", fp32_cos)
    int8, int8_cos = gated(quantized_tower(fp32_path, directory, kind, quantize), quant_min_cosine)
    if int8_cos < quant_min_cosine:
        notes.append(f"clip_runtime: int8 quantisation of the {kind} tower of {encoder.model_id} refused "
                     f"(min cosine {int8_cos:.4f} to torch < {quant_min_cosine}); {kind} tower runs fp32 ONNX")  # fmt: skip
        return fp32, TowerChoice("onnx", fp32_cos, notes)
    return int8, TowerChoice("onnx-int8", int8_cos)


def apply_runtime(
    encoder: ClipEncoder, runtime: str, cache_dir: Path, threads: int | None = None,
    quantize: Quantizer = quantize_int8, quant_min_cosine: float = QUANT_MIN_COSINE,
) -> ClipEncoder:  # fmt: skip
    """Switch ``encoder``'s towers to ``runtime`` (``torch``, ``onnx``, ``onnx-int8``), exporting and
    gating as needed; records ``runtime`` (what runs: the lowest of the two towers' choices when they
    differ, e.g. ``onnx-int8/onnx``), ``runtime_towers`` and ``runtime_notes`` on the encoder."""
    if runtime not in RUNTIMES:
        raise EmbeddingsError(f"clip runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    if runtime != "torch" and not encoder.device == "cpu":
        raise EmbeddingsError(f"clip runtime {runtime!r} runs on the CPU; device is {encoder.device} (use torch there)")
    directory = model_dir(cache_dir, encoder.model_id)
    image, image_choice = choose_tower(encoder, "image", runtime, directory, threads, quantize, quant_min_cosine)
    text, text_choice = choose_tower(encoder, "text", runtime, directory, threads, quantize, quant_min_cosine)
    encoder.towers = OnnxTowers(image, text)
    encoder.runtime_towers = {"image": image_choice, "text": text_choice}
    encoder.runtime = (image_choice.runtime if image_choice.runtime == text_choice.runtime
                       else f"{image_choice.runtime}/{text_choice.runtime}")  # fmt: skip
    encoder.runtime_notes = image_choice.notes + text_choice.notes
    for note in encoder.runtime_notes:
        log.warning("degraded: %s", note)
    if runtime != "torch":
        log.info("clip runtime %s for %s: image %s (min cosine %s), text %s (min cosine %s)", runtime, encoder.model_id,
                 image_choice.runtime, image_choice.min_cosine, text_choice.runtime, text_choice.min_cosine)  # fmt: skip
    return encoder
