"""Segmenting scans: checkpoint or ONNX model -> label map on the input's own grid.

The chain: the scan's array in its canonical layout (:mod:`saunet.orientation`), on the network grid
(:mod:`saunet.preprocessing`), logits in chunks of slices (:func:`predict_logits`) resampled onto the input's
grid, probabilities and classes there (:class:`saunet.labels.LabelMap`), cleaned (:mod:`saunet.postprocessing`).

The ONNX path needs NumPy and ONNX Runtime only: PyTorch is imported for .pt checkpoints alone, which
saves the 2-3 s its import costs each `saunet segment` process.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saunet.checkpoints import Checkpoint
from saunet.errors import InputError
from saunet.imageio import Volume
from saunet.labels import LabelMap
from saunet.orientation import Layout, volume_layout
from saunet.postprocessing import PostprocessingSettings, postprocess
from saunet.preprocessing import Grid, Preprocessor, foreground_bounds, normalise_intensities
from saunet.quality import (
    CLIP_PERCENTILES,
    TrainingProfile,
    Verdict,
    assess,
    fallback_triggers,
    handed_over,
    member_disagreements,
    unlike_contrast,
)
from saunet.refinement import SHIPPED as SHIPPED_REFINER
from saunet.refinement import SHIPPED_FOR_FALLBACK, OutlineRefiner, refine, widened

WEIGHTS = Path(__file__).parent / "weights"
# The shipped ensemble: one recipe trained from two random starts, whose logits are averaged (docs/model-card.md).
SHIPPED = (WEIGHTS / "spine_levels_sau_net.pt", WEIGHTS / "spine_levels_sau_net_seed1.pt")
DEFAULT_MODEL = SHIPPED[0]
# The same weights exported to ONNX: ONNX Runtime folds batch norm into the convolutions and runs the
# shipped model faster than eager PyTorch on CPU with identical masks (reports/speed-ups.md).
SHIPPED_ONNX = tuple(path.with_suffix(".onnx") for path in SHIPPED)
DEFAULT_ONNX = SHIPPED_ONNX[0]
# The shipped fallback: an ensemble of the same recipe trained with random contrast curves from two random starts,
# which segments contrasts the training scans lack; its result replaces the first ensemble's where quality control
# finds that one likely wrong (quality.fallback_triggers; reports/levels/fallback).
FALLBACK = (WEIGHTS / "spine_levels_sau_net_curves.pt", WEIGHTS / "spine_levels_sau_net_curves_seed1.pt")
CHUNK_SLICES = 12
# What every member of an ensemble must share with the first (Segmenter): its logits are averaged.
ENSEMBLE_CONTRACT = ("preprocessing", "label_map", "slice_axis")
# Members after the first run only on the box where the first finds a body and this many slices, rows and columns
# beyond; elsewhere the first's logits stand for theirs (reports/levels/seed-ensemble/member-box.md).
MEMBER_MARGINS = (3, 32, 32)
# A 2D network that pools five times sees an in-plane crop as it sees the whole image only if the crop starts on
# its 32-pixel grid (the network pads at the end).
POOLING_ALIGNMENT = 32


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

    Args:
        model: an :class:`OnnxModel` or :class:`TorchModel` (any callable from (1, 1, D, H, W) to logits).
        image: the prepared volume on the network grid, float32 (1, 1, D, H, W).
        halo: slices on each side one output slice depends on (the model's ``slice_halo``); None runs the
            whole volume at once.
        chunk: slices per chunk; 0 runs the whole volume at once.

    Returns:
        float32 logits (1, K, D, H, W), those of a whole-volume pass (to float rounding).

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


def placed(crop: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    """``crop`` (..., *box's extent) inside zeros of the spatial ``shape`` (leading axes kept), at ``box``."""
    whole = np.zeros((*crop.shape[:-len(shape)], *shape), crop.dtype)
    whole[(Ellipsis, *box)] = crop
    return whole


@dataclass
class Segmentation:
    labels: np.ndarray  # uint8 on the input grid: the data set's label values, post-processed
    raw_labels: np.ndarray  # the same before post-processing
    # float32 (K, *box's extent): the foreground classes' probabilities inside ``box`` of the input's stored array,
    # outside which background is the most probable class (see Segmenter.segment): a scan is mostly background, and
    # an array of them over the whole scan costs more to allocate than to fill (reports/speed-ups.md)
    box_probabilities: np.ndarray
    box: tuple[slice, ...]
    layout: Layout  # how the input's array was brought into the canonical layout
    # the input normalised as quality control and the refiner see it (CLIP_PERCENTILES), on its grid: the network's
    # own view of it where the network normalises so (Segmenter.in_shared_units)
    intensities: np.ndarray | None = None
    disagreement: float | None = None  # an ensemble's: quality.member_disagreements (None for one model)
    name_disagreement: float | None = None  # the same on names alone, judged where the refiner redrew the outlines
    model: str | list[str] | None = None  # the model file, or an ensemble's files, that made it
    # the post-processed labels before the outline refiner redrew them, and the refiner's file (None: not refined)
    unrefined_labels: np.ndarray | None = None
    refiner: str | None = None

    @property
    def network_labels(self) -> np.ndarray:
        """The level network's own post-processed labels, which quality control judges as it was calibrated."""
        return self.labels if self.unrefined_labels is None else self.unrefined_labels

    @property
    def probabilities(self) -> np.ndarray:
        """float32 (K, *input shape): :attr:`box_probabilities` inside the box, 0 outside."""
        return placed(self.box_probabilities, self.box, self.labels.shape)


@functools.cache
def register_shared_arena() -> None:
    """Register ONNX Runtime's CPU arena for every session of this process to share (once per process)."""
    import onnxruntime

    memory = onnxruntime.OrtMemoryInfo("Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                       onnxruntime.OrtMemType.DEFAULT)
    onnxruntime.create_and_register_allocator(memory, onnxruntime.OrtArenaCfg(0, -1, -1, -1))  # ORT's defaults


def session_options():
    """ONNX Runtime session options for saunet's models: one CPU memory arena for every session of the process
    (an ensemble's members and the fallback reuse the memory the first one took, a lower peak), no memory
    patterns."""
    import onnxruntime

    register_shared_arena()
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.use_env_allocators", "1")
    # Without memory patterns ONNX Runtime's arena reuses freed blocks across chunks of different sizes
    # instead of keeping one block per size: a lower peak, no slower (reports/speed-ups.md).
    options.enable_mem_pattern = False
    return options


class OnnxModel:
    """An exported model run with ONNX Runtime: (1, 1, D, H, W) float32 array -> logits (1, K, D, H, W).

    Exports of models with boundary terms (saunet.export.ChunkGraph) have ``has_boundary_terms`` and also give
    ``edges_and_logits`` and ``boundary_terms``. Exports of SAU-Net from before ChunkGraph (inputs image and
    features) still run, with chunks that carry their neighbouring slices.
    ``checkpoint`` holds what inference needs, from the file's metadata (None if saunet did not export it);
    ``slice_halo`` is the model's, as exported (older exports: 1 for SAU-Net, else None, the whole volume).
    """

    def __init__(self, path: Path):
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise InputError(path, f"not a readable ONNX model ({str(err).splitlines()[0][:120]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        stored = json.loads(meta["saunet_checkpoint"]) if "saunet_checkpoint" in meta else None
        self.checkpoint = Checkpoint.from_dict(stored) if stored else None
        outputs = {o.name for o in self.session.get_outputs()}
        self.has_boundary_terms = "boundary_logits" in outputs
        self.slice_halo = json.loads(meta.get("saunet_slice_halo", "1" if self.has_boundary_terms else "null"))
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

    def __init__(self, module, device: str = "cpu", bf16: bool = False, checkpoint: Checkpoint | None = None):
        self.module, self.device, self.bf16, self.checkpoint = module, device, bf16, checkpoint
        self.has_boundary_terms = hasattr(module, "boundary_terms")
        self.slice_halo = module.slice_halo

    @classmethod
    def from_checkpoint(cls, path: Path, device: str, bf16: bool, channels_last: bool) -> TorchModel:
        import torch

        checkpoint = Checkpoint.load(path)
        module = checkpoint.build_model().to(device)
        if channels_last and not module.volumetric:
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


def body_box(logits: np.ndarray, margins: tuple[int, int, int]) -> tuple[slice, slice, slice] | None:
    """The box of ``logits`` (channels, D, H', W') around every voxel they decode as a body, widened by ``margins``
    (slices, rows, columns) each side within the volume; None when none decodes so."""
    bounds = foreground_bounds(LabelMap.decoded_as_foreground(logits))
    if bounds is None:
        return None
    steps = (1, POOLING_ALIGNMENT, POOLING_ALIGNMENT)  # slices as they come, in-plane on the pooling grid
    return tuple(aligned(b.start - m, b.stop + m, n, step)
                 for b, m, n, step in zip(bounds, margins, logits.shape[1:], steps))


def aligned(start: int, stop: int, size: int, step: int) -> slice:
    """[start, stop) widened to multiples of ``step`` within [0, size): with the pooling grid's step, a crop that
    pools as the whole image does."""
    return slice(max(start // step * step, 0), min(-(-stop // step) * step, size))


def logits_in_box(model, image: np.ndarray, box: tuple[slice, slice, slice], chunk: int) -> np.ndarray:
    """``model``'s logits (channels, *box's extent) for ``image`` (1, 1, D, H', W') inside ``box``, run on that crop
    (and the ``slice_halo`` slices either side, so that a box of whole slices gets a whole-volume pass's logits). A
    model whose halo is unknown (None) runs on the whole volume."""
    if model.slice_halo is None:
        return predict_logits(model, image, None, chunk)[0][(slice(None), *box)]
    span, rows, columns = box
    low, high = max(span.start - model.slice_halo, 0), min(span.stop + model.slice_halo, image.shape[2])
    part = predict_logits(model, np.ascontiguousarray(image[:, :, low:high, rows, columns]), model.slice_halo, chunk)[0]
    return part[:, span.start - low : span.stop - low]


def averaged_in_place(first: np.ndarray, others: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``first`` (K, D, H, W), one ensemble member's logits, becomes the mean of it and the ``others``' in its own
    array, slice by slice (a new array of a scan's logits costs more to allocate than to fill); returns each member's
    classes (members, D, H, W) and the mean's (D, H, W), as :meth:`LabelMap.network_classes` gives them."""
    count = 1 + len(others)
    member_classes = np.empty((count, *first.shape[1:]), np.uint8)
    mean_classes = np.empty(first.shape[1:], np.uint8)
    for s in range(first.shape[1]):
        for k, member in enumerate((first, *others)):
            member_classes[k, s] = LabelMap.network_classes(member[:, s])
        for other in others:
            first[:, s] += other[:, s]
        first[:, s] /= count
        mean_classes[s] = LabelMap.network_classes(first[:, s])
    return member_classes, mean_classes


def model_paths(model_path: str | Path | Sequence[str | Path] | None, device: str, bf16: bool) -> list[Path]:
    """The model files to run: those given (one, or an ensemble's members), else the shipped ensemble (its ONNX
    exports on the CPU)."""
    if isinstance(model_path, (str, Path)):
        return [Path(model_path)]
    if model_path:
        return [Path(path) for path in model_path]
    return shipped_files(SHIPPED, device, bf16)


def shipped_files(checkpoints: Sequence[Path], device: str, bf16: bool) -> list[Path]:
    """Shipped ``checkpoints`` as they run here: their ONNX exports on the CPU (without bf16), where all exist."""
    onnx = [path.with_suffix(".onnx") for path in checkpoints]
    return onnx if device == "cpu" and not bf16 and all(path.exists() for path in onnx) else list(checkpoints)


def fallback_paths(fallback: str | Path | Sequence[str | Path] | bool, model_path, device: str,
                   bf16: bool) -> list[Path]:
    """The fallback model's files (none: no fallback): ``fallback`` True takes the shipped one (its ONNX exports on
    the CPU) when the shipped ensemble runs, False none, a path or several (an ensemble) those."""
    if fallback is False or (fallback is True and model_path):
        return []
    if fallback is True:
        return shipped_files(FALLBACK, device, bf16)
    return [Path(fallback)] if isinstance(fallback, (str, Path)) else [Path(path) for path in fallback]


def fallback_refiner(refine: str | Path | bool | None, fallback, first: OutlineRefiner | None) -> Path | bool:
    """The outline refiner of the fallback's results (False: none); see :class:`Segmenter`'s ``fallback_refine``.
    The first model's refiner never saw other contrasts and draws the fallback's inverted scans worse than the
    fallback alone (reports/levels/fallback/README.md, session 36)."""
    if refine is None:
        return SHIPPED_FOR_FALLBACK if fallback is True and first is not None else False
    return SHIPPED_FOR_FALLBACK if refine is True else refine


def load_model(path: Path, device: str, bf16: bool, channels_last: bool) -> OnnxModel | TorchModel:
    """One model file's network: an ONNX export runs with ONNX Runtime, a checkpoint with PyTorch."""
    if path.suffix != ".onnx":
        return TorchModel.from_checkpoint(path, device, bf16, channels_last)
    if not path.exists():
        raise InputError(path, "no such model file")
    model = OnnxModel(path)
    if model.checkpoint is None:
        raise InputError(path, "ONNX model was not exported by saunet export (no preprocessing metadata)")
    return model


def check_members(paths: list[Path], models: list) -> None:
    """Members of an ensemble average their logits: they must read scans and name classes alike."""
    first = models[0].checkpoint
    for path, model in zip(paths[1:], models[1:]):
        differing = [key for key in ENSEMBLE_CONTRACT if getattr(model.checkpoint, key) != getattr(first, key)]
        if differing:
            raise InputError(path, f"cannot be averaged with {paths[0]}: its {' and '.join(differing)} differ")


def refiner_for(refine: str | Path | bool) -> OutlineRefiner | None:
    """The outline refiner ``refine`` names: True the shipped one, False none, or its ONNX file."""
    if refine is False:
        return None
    return OutlineRefiner(SHIPPED_REFINER if refine is True else Path(refine))


def refined_in_box(refiner: OutlineRefiner, classes: np.ndarray, normalised: np.ndarray, layout: Layout,
                   spacing: tuple[float, ...]) -> np.ndarray:
    """Post-processed ``classes`` inside a box of the stored array, redrawn by ``refiner`` (:func:`refine`) from the
    scan ``normalised`` as the network saw it in the same box; stored layout in and out."""
    pixel_mm = layout.spacing(spacing)[1:]
    redrawn = refine(refiner, layout.to_canonical(classes), layout.to_canonical(normalised), pixel_mm)
    return layout.from_canonical(redrawn)


class Segmenter:
    """Loads a model once and segments volumes with it.

    Args:
        model_path: a saunet checkpoint (.pt) or ONNX export (.onnx), or several: an ensemble, whose logits are
            averaged (its members must share preprocessing, label map and slice axis; post-processing and quality
            control take the first's settings); None uses the shipped ensemble (its ONNX exports on CPU).
        device: "cpu" or "cuda" (PyTorch checkpoints only).
        min_component_mm3: islands smaller than this are removed.
        max_components: keep only this many of the largest components; None takes the number the model
            learned from its training masks (0 keeps all).
        bf16: bfloat16 autocast (PyTorch checkpoints only).
        channels_last: run PyTorch models of 2D slices channels-last, which is faster on CPU.
        chunk_slices: slices per chunk (0: the whole volume at once).
        fallback: the model that segments a scan again where quality control finds the first result in doubt
            (:meth:`segment_checked`): True the shipped one, if the shipped ensemble runs; False none; or its file, or
            several files (an ensemble).
        refine: the outline refiner (:mod:`saunet.refinement`) that redraws the bodies' outlines at the scan's own
            in-plane grid: None the shipped one with the shipped ensemble and none with any other model (a fold's
            model must not meet a refiner trained on its test scans); True the shipped one; False none; or its
            ONNX file.
        fallback_refine: the outline refiner of the fallback's results: None the shipped fallback's own (trained
            with random contrast curves) where the shipped fallback runs and ``refine`` is not False, else none;
            True that one; False none; or its ONNX file.
    """

    def __init__(self, model_path: str | Path | Sequence[str | Path] | None = None, device: str = "cpu",
                 min_component_mm3: float = PostprocessingSettings.min_component_mm3, max_components: int | None = None,
                 bf16: bool = False, channels_last: bool = True, chunk_slices: int = CHUNK_SLICES,
                 fallback: str | Path | Sequence[str | Path] | bool = True, refine: str | Path | bool | None = None,
                 fallback_refine: str | Path | bool | None = None):
        self.paths = model_paths(model_path, device, bf16)
        self.refiner = refiner_for(model_path is None if refine is None else refine)
        self.models = [load_model(path, device, bf16, channels_last) for path in self.paths]
        check_members(self.paths, self.models)
        checkpoint: Checkpoint = self.models[0].checkpoint
        self.model_name = checkpoint.model
        self.label_map = checkpoint.label_map
        self.preprocessor = Preprocessor(checkpoint.preprocessing)
        self.slice_axis = checkpoint.slice_axis
        learned = checkpoint.postprocessing.max_components
        self.postprocessing = PostprocessingSettings(min_component_mm3,
                                                     learned if max_components is None else max_components)
        self.chunk_slices = chunk_slices
        self.training_profile = TrainingProfile.from_dict(checkpoint.training_profile)
        self.fallback_paths = fallback_paths(fallback, model_path, device, bf16)
        self.fallback_settings = dict(device=device, min_component_mm3=min_component_mm3, max_components=max_components,
                                      bf16=bf16, channels_last=channels_last, chunk_slices=chunk_slices,
                                      refine=fallback_refiner(fallback_refine, fallback, self.refiner))
        self._fallback: Segmenter | None = None
        if fallback not in (True, False):  # one's own fallback is checked before any scan: nothing half-written
            self.fallback()

    def fallback(self) -> Segmenter:
        """The fallback model's segmenter, loaded when first needed (most scans never need it)."""
        if self._fallback is None:
            self._fallback = Segmenter(self.fallback_paths, fallback=False, **self.fallback_settings)
            if self._fallback.label_map != self.label_map:
                raise InputError(self.fallback_paths[0], f"names its classes otherwise than {self.paths[0]}")
        return self._fallback

    @property
    def described(self) -> str | list[str]:
        """The model file, or an ensemble's files, as a record names them."""
        return str(self.paths[0]) if len(self.paths) == 1 else [str(path) for path in self.paths]

    def segment(self, volume: Volume, slice_axis: int | None = None, orientation: str | None = None,
                whole_probabilities: bool = False) -> Segmentation:
        """Label map and probabilities of ``volume`` on its own grid.

        Args:
            volume: the scan, in any array layout its header describes.
            slice_axis: numpy axis of the slices, in-plane axes taken as stored (overrides the header).
            orientation: an orientation code such as 'RPS' for the file's axes (overrides the header).
            whole_probabilities: the probabilities over the whole scan; by default only inside the box that can
                hold foreground (0 outside it, where background is the most probable class).

        Returns:
            :class:`Segmentation` with the data set's label values, before and after post-processing.
        """
        layout = volume_layout(volume, slice_axis if slice_axis is not None else self.slice_axis, orientation)
        logits, disagreements, grid, intensities = self.ensemble_logits(volume, layout)
        labels, raw, probabilities, box = self.decode(logits, grid, volume.spacing, volume.array.shape)
        unrefined, seen = None, self.in_shared_units(volume.array, intensities)
        if self.refiner is not None and labels.any():
            unrefined = self.label_map.values(labels)
            labels[box] = refined_in_box(self.refiner, labels[box], seen[box], layout, volume.spacing)
        if whole_probabilities:
            probabilities = self.label_map.probabilities(self.preprocessor.inverse(logits, grid))
            box = tuple(slice(0, size) for size in volume.array.shape)
        whole, names = disagreements or (None, None)
        return Segmentation(self.label_map.values(labels), self.label_map.values(raw), probabilities, box, layout,
                            seen, whole, names, self.described, unrefined,
                            None if self.refiner is None else str(self.refiner.path))

    def segment_checked(self, volume: Volume, slice_axis: int | None = None, orientation: str | None = None,
                        whole_probabilities: bool = False) -> tuple[Segmentation, Verdict]:
        """:meth:`segment` and its quality control; where that calls for it (:func:`quality.fallback_triggers`), the
        fallback model's segmentation and verdict instead, which says so."""
        result = self.segment(volume, slice_axis, orientation, whole_probabilities)
        verdict = self.assess(volume, result)
        triggers = fallback_triggers(verdict, unlike_contrast(verdict.statistics, self.training_profile))
        if not triggers or not self.fallback_paths:
            return result, verdict
        fallback = self.fallback()
        second = fallback.segment(volume, slice_axis, orientation, whole_probabilities)
        name = " + ".join(path.name for path in self.fallback_paths)
        return second, handed_over(fallback.assess(volume, second), verdict, triggers, name)

    def network_logits(self, volume: Volume, layout: Layout) -> tuple[np.ndarray, Grid, np.ndarray]:
        """The network's logits (channels, D, H', W') for ``volume`` read in ``layout``, on its grid (returned
        too), and the scan's intensities normalised as the network saw them (on the scan's grid). An ensemble's
        logits are its members' mean."""
        logits, _, grid, intensities = self.ensemble_logits(volume, layout)
        return logits, grid, intensities

    def ensemble_logits(self, volume: Volume, layout: Layout
                        ) -> tuple[np.ndarray, tuple[float, float] | None, Grid, np.ndarray]:
        """As :meth:`network_logits`, with the members' disagreement (:func:`quality.member_disagreements`, whole and
        on names alone; None for one model) second. Members after the first run on the box around the first one's bodies
        (:data:`MEMBER_MARGINS`) and take its logits outside it, so their mean is the first's logits there: only the
        box is averaged, in the first's array (a new array of a scan's logits costs more to allocate than to fill)."""
        grid = self.preprocessor.grid(volume.array.shape, volume.spacing, layout)
        intensities = self.preprocessor.normalised(volume.array)
        image = self.preprocessor.image_like(intensities, grid)[None, None]
        first = predict_logits(self.models[0], image, self.models[0].slice_halo, self.chunk_slices)[0]
        if len(self.models) == 1:
            return first, None, grid, intensities
        box = body_box(first, MEMBER_MARGINS) or tuple(slice(0, size) for size in first.shape[1:])
        others = [logits_in_box(model, image, box, self.chunk_slices) for model in self.models[1:]]
        classes = averaged_in_place(first[(slice(None), *box)], others)
        return first, member_disagreements(*classes), grid, intensities

    def decode(self, logits: np.ndarray, grid: Grid, spacing: tuple[float, ...],
               shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[slice, ...]]:
        """Post-processed classes and raw classes on the input's grid (stored ``shape``), and the probabilities
        (K, ...) inside the box of it that can hold foreground (returned last), from the network's logits (channels,
        D, H', W').

        The logits are resampled, then turned into probabilities and classes, as nnU-Net v2 does: resampled
        probabilities would put every boundary half-way between two network pixels where the network is sure of
        both, resampled logits put it where the classes' scores cross (reports/levels/recipe/README.md).

        Most of a scan is background: resampling, decoding and post-processing only the box that can hold
        foreground gives the whole scan's classes (post-processing sees every component whole) at a fraction of
        the cost. Background is the most probable class outside that box (empty when nothing decodes as a body).
        """
        box = self.preprocessor.foreground_box(self.label_map.decoded_as_foreground(logits), grid)
        if box is not None and self.refiner is not None:  # room for the outlines it may redraw
            box = widened(box, grid.native_shape)
        if box is None:
            return (np.zeros(shape, np.uint8), np.zeros(shape, np.uint8),
                    np.zeros((self.label_map.out_channels, *(0 for _ in shape)), np.float32), tuple(slice(0, 0) for _ in shape))
        probabilities = self.label_map.probabilities(self.preprocessor.inverse(logits, grid, box))
        raw = self.label_map.decode(probabilities)
        labels = postprocess(raw, spacing, self.postprocessing, probabilities, grid.layout.superior)
        where = grid.layout.stored_box(box, grid.native_shape)
        return placed(labels, where, shape), placed(raw, where, shape), probabilities, where

    def assess(self, volume: Volume, result: Segmentation) -> Verdict:
        """Quality control of ``result``, this model's segmentation of ``volume`` (:mod:`saunet.quality`)."""
        return assess(volume.array, volume.spacing, result.network_labels, result.box_probabilities, result.layout,
                      self.label_map, self.training_profile, normalised=result.intensities,
                      disagreement=result.disagreement, box=result.box,
                      refined=None if result.unrefined_labels is None else result.labels,
                      name_disagreement=None if result.unrefined_labels is None else result.name_disagreement)

    def in_shared_units(self, array: np.ndarray, intensities: np.ndarray) -> np.ndarray:
        """The scan ``array`` normalised as quality control and the refiner see it (:data:`CLIP_PERCENTILES`):
        ``intensities``, the network's view of it, where this model's network normalises so (reused, not redone)."""
        if self.preprocessor.settings.clip_percentiles == CLIP_PERCENTILES:
            return intensities
        return normalise_intensities(array, CLIP_PERCENTILES)
