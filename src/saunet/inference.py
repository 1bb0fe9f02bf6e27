"""Segmenting scans: checkpoint or ONNX model -> label map on the input's own grid.

The ONNX path needs NumPy and ONNX Runtime only: PyTorch is imported for .pt checkpoints alone, which
saves the 2-3 s its import costs each `saunet segment` process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from saunet.datasets import LabelMap
from saunet.errors import InputError
from saunet.imageio import Volume
from saunet.orientation import Layout, volume_layout
from saunet.preprocessing import PreprocessingSettings, Preprocessor

DEFAULT_MODEL = Path(__file__).parent / "weights" / "lumbar_t2_sau_net.pt"
# The same weights exported to ONNX: ONNX Runtime folds batch norm into the convolutions and runs the
# shipped model about 2.5x faster than eager PyTorch on CPU with identical masks (reports/benchmark.md).
DEFAULT_ONNX = DEFAULT_MODEL.with_suffix(".onnx")
# Slices on each side that one output slice depends on (SAU-Net: its two neighbours, through the attention
# fusion). Chunked inference gives the whole-volume output with memory bounded by the chunk (predict_logits).
# unet3d sees the whole volume and is not chunked.
SLICE_HALO = {"sau-net": 1, "dense-unet": 0, "unet2d": 0}
CHUNK_SLICES = 12
MIN_COMPONENT_MM3 = 1000.0  # a vertebral body is about 30 000 mm^3; smaller islands are false positives


def label_components(mask: np.ndarray) -> np.ndarray:
    """Connected components (26-connectivity in 3D): 0 for background, 1..N for the components."""
    # SimpleITK rather than scipy.ndimage: it is loaded for the images anyway, and importing scipy.ndimage
    # costs a `saunet segment` process 0.3-0.6 s.
    return sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True))


def clean_mask(mask: np.ndarray, spacing: tuple[float, ...], min_mm3: float, max_components: int = 0) -> np.ndarray:
    """Drop connected components smaller than ``min_mm3`` cubic millimetres and keep at most the
    ``max_components`` largest of the rest (0: all of them)."""
    if (min_mm3 <= 0 and max_components <= 0) or not mask.any():
        return mask
    components = label_components(mask)
    sizes = np.bincount(components.ravel()) * float(np.prod(spacing))
    sizes[0] = 0.0  # the background
    keep = sizes >= min_mm3
    keep[0] = False
    if 0 < max_components < keep.sum():
        keep[np.argsort(sizes)[: len(sizes) - max_components]] = False
    return keep[components]


def chunk_bounds(depth: int, chunk: int) -> list[int]:
    """Boundaries of equal chunks of at most ``chunk`` slices: 39 slices, at most 12 -> 0, 10, 20, 29, 39."""
    count = -(-depth // chunk)
    return [round(i * depth / count) for i in range(count + 1)]


def forward_in_chunks(fn, image: np.ndarray, halo: int | None, chunk: int) -> np.ndarray:
    """``fn`` run on chunks of at most ``chunk`` slices of ``image`` (1, 1, D, H, W), each with ``halo``
    neighbouring slices on both sides; halo None or chunk 0 runs it on the whole volume."""
    depth = image.shape[2]
    if halo is None or chunk <= 0 or depth <= chunk:
        return fn(image)
    bounds = chunk_bounds(depth, chunk)
    outputs = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        low, high = max(start - halo, 0), min(stop + halo, depth)
        outputs.append(fn(np.ascontiguousarray(image[:, :, low:high]))[:, :, start - low : stop - low])
    return np.concatenate(outputs, axis=2)


def predict_logits(model, image: np.ndarray, halo: int | None, chunk: int) -> np.ndarray:
    """Logits (1, K, D, H, W) of ``model`` for ``image`` (1, 1, D, H, W), in chunks of at most ``chunk`` slices.

    A model whose slices each take one term from each neighbour (``has_boundary_terms``: SAU-Net, halo 1)
    decodes every chunk on its own, then adds to the two slices either side of each boundary between chunks
    the terms they missed, from the two slices' features (``boundary_terms``): every slice's features are
    computed once and no full features leave the model. Any other model runs on chunks with ``halo``
    neighbouring slices on each side (:func:`forward_in_chunks`).
    """
    depth = image.shape[2]
    if halo != 1 or not getattr(model, "has_boundary_terms", False) or chunk <= 0 or depth <= chunk:
        return forward_in_chunks(model, image, halo, chunk)
    bounds = chunk_bounds(depth, chunk)
    parts = [model.edges_and_logits(np.ascontiguousarray(image[:, :, a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
    logits = np.concatenate([part_logits for _, part_logits in parts], axis=2)
    for (edges_before, _), (edges_after, _), boundary in zip(parts[:-1], parts[1:], bounds[1:-1]):
        pair = np.concatenate([edges_before[:, 1:], edges_after[:, :1]], axis=1)
        logits[:, :, boundary - 1 : boundary + 1] += model.boundary_terms(pair)
    return logits


@dataclass
class Segmentation:
    labels: np.ndarray  # uint8 on the input grid
    probabilities: np.ndarray  # float32 (K, *input shape), foreground classes
    layout: Layout  # how the input's array was brought into the canonical layout


class OnnxModel:
    """An exported model run with ONNX Runtime: (1, 1, D, H, W) float32 array -> logits (1, K, D, H, W).

    Exports of models with boundary terms (saunet.export.ChunkGraph) have ``has_boundary_terms`` and also give
    ``edges_and_logits`` and ``boundary_terms``. Exports of SAU-Net from before ChunkGraph (inputs image and
    features) still run, with chunks that carry their neighbouring slices.
    ``checkpoint`` holds what inference needs, from the file's metadata (None if saunet did not export it).
    """

    def __init__(self, path: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Without memory patterns ONNX Runtime's arena reuses freed blocks across chunks of different sizes
        # instead of keeping one block per size: SAU-Net's peak 1.4 GB instead of 2.3 GB, no slower.
        options.enable_mem_pattern = False
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise InputError(path, f"not a readable ONNX model ({str(err).splitlines()[0][:120]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.checkpoint = json.loads(meta["saunet_checkpoint"]) if "saunet_checkpoint" in meta else None
        outputs = {o.name for o in self.session.get_outputs()}
        self.has_boundary_terms = "boundary_logits" in outputs
        self._logits = "image_logits" if "image_logits" in outputs else "logits"
        if len(self.session.get_inputs()) > 1 and self._logits != "image_logits":  # its logits need features
            raise InputError(path, "exported by an older saunet (no image_logits output): export it again with saunet export")
        # ONNX Runtime wants every input, even for an output that does not use it: one-voxel stand-ins.
        self._stand_ins = {i.name: np.zeros([1, *(d if isinstance(d, int) else 1 for d in i.shape[1:])], np.float32)
                           for i in self.session.get_inputs()}

    def _run(self, outputs: list[str], **inputs: np.ndarray) -> list[np.ndarray]:
        return self.session.run(outputs, {**self._stand_ins, **inputs})

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._run([self._logits], image=x)[0]

    def edges_and_logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, 1, D, H, W) -> features of the first and last slice (1, 2, F, H, W) and the logits (1, K, D, H, W)
        of these D slices alone."""
        edges, logits = self._run(["image_edges", "image_logits"], image=x)
        return edges, logits

    def boundary_terms(self, edges: np.ndarray) -> np.ndarray:
        """Features of the two slices either side of a chunk boundary (1, 2, F, H, W) -> what their logits miss."""
        return self._run(["boundary_logits"], edges=edges)[0]


class TorchModel:
    """A PyTorch module run on numpy arrays: (1, 1, D, H, W) float32 -> logits (1, K, D, H, W); modules
    with ``boundary_terms`` (sau-net) have ``has_boundary_terms`` and give ``edges_and_logits`` and
    ``boundary_terms``, as :class:`OnnxModel`."""

    def __init__(self, module, device: str = "cpu", bf16: bool = False, checkpoint: dict | None = None):
        self.module, self.device, self.bf16, self.checkpoint = module, device, bf16, checkpoint
        self.has_boundary_terms = hasattr(module, "boundary_terms")

    @classmethod
    def from_checkpoint(cls, path: Path, device: str, bf16: bool, channels_last: bool) -> TorchModel:
        import torch

        from saunet.training import load_checkpoint, model_from_checkpoint

        checkpoint = load_checkpoint(path)
        module = model_from_checkpoint(checkpoint).to(device)
        if channels_last and checkpoint["model"] != "unet3d":
            module = module.to(memory_format=torch.channels_last)
        return cls(module, device, bf16, checkpoint)

    def _run(self, fn, x: np.ndarray):
        """``fn`` on ``x``; its tensor, or each tensor of a tuple, back as a float32 array."""
        import torch

        with torch.inference_mode(), torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.bf16):
            out = fn(torch.from_numpy(x).to(self.device))
        if isinstance(out, tuple):
            return tuple(t.float().cpu().numpy() for t in out)
        return out.float().cpu().numpy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._run(self.module, x)

    def edges_and_logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run(self.module.edges_and_logits, x)

    def boundary_terms(self, edges: np.ndarray) -> np.ndarray:
        return self._run(self.module.boundary_terms, edges)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # overflow-free form of 1 / (1 + exp(-x))


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis, keepdims=True))
    return exp / exp.sum(axis, keepdims=True)


class Segmenter:
    """Loads a model once and segments volumes with it.

    ``model_path`` is a saunet checkpoint (.pt) or an ONNX export (.onnx); None uses the shipped model (its
    ONNX export on CPU). PyTorch models of 2D slices run channels-last, which is faster on CPU.
    Post-processing removes islands under ``min_component_mm3`` and keeps the ``max_components`` largest
    components; None takes the number the model learned from its training masks (0 keeps all).
    """

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu",
                 min_component_mm3: float = MIN_COMPONENT_MM3, max_components: int | None = None, bf16: bool = False,
                 channels_last: bool = True, chunk_slices: int = CHUNK_SLICES):
        if model_path:
            path = Path(model_path)
        else:
            path = DEFAULT_ONNX if device == "cpu" and not bf16 and DEFAULT_ONNX.exists() else DEFAULT_MODEL
        if path.suffix == ".onnx":
            if not path.exists():
                raise InputError(path, "no such model file")
            self.model = OnnxModel(path)
            if self.model.checkpoint is None:
                raise InputError(path, "ONNX model was not exported by saunet export (no preprocessing metadata)")
        else:
            self.model = TorchModel.from_checkpoint(path, device, bf16, channels_last)
        info = self.model.checkpoint
        self.path = path
        self.model_name = info["model"]
        self.label_map = LabelMap.from_dict(info["label_map"])
        self.preprocessor = Preprocessor(PreprocessingSettings.from_dict(info["preprocessing"]))
        self.slice_axis = info.get("slice_axis")
        self.min_component_mm3 = min_component_mm3
        self.max_components = (max_components if max_components is not None
                               else info.get("postprocessing", {}).get("max_components", 0))
        self.chunk_slices = chunk_slices

    def segment(self, volume: Volume, slice_axis: int | None = None, orientation: str | None = None) -> Segmentation:
        """Label map and probabilities of ``volume`` on its own grid. The array layout comes from the header
        (:mod:`saunet.orientation`), or from ``orientation`` (a code such as 'RPS' for a header without one), or
        ``slice_axis`` (slices on that numpy axis, in-plane axes as stored)."""
        layout = volume_layout(volume, slice_axis if slice_axis is not None else self.slice_axis, orientation)
        grid = self.preprocessor.grid(volume.array.shape, volume.spacing, layout)
        image = self.preprocessor.image(volume.array, grid)[None, None]
        logits = predict_logits(self.model, image, SLICE_HALO.get(self.model_name), self.chunk_slices)[0]
        if logits.shape[0] == 1:
            probs = self.preprocessor.inverse(sigmoid(logits), grid)
            labels = clean_mask(probs[0] > 0.5, volume.spacing, self.min_component_mm3, self.max_components)
            labels = labels.astype(np.uint8)
        else:
            probs = self.preprocessor.inverse(softmax(logits, 0), grid)
            labels = probs.argmax(0).astype(np.uint8)
            foreground = clean_mask(labels > 0, volume.spacing, self.min_component_mm3, self.max_components)
            labels[~foreground] = 0
            probs = probs[1:]
            if self.label_map.classes is not None:  # back to the data set's own label values
                labels = np.array([0, *self.label_map.classes], dtype=np.uint8)[labels]
        return Segmentation(labels, probs.astype(np.float32), layout)
