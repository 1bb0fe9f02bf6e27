"""``saunet export``: a checkpoint to ONNX, with its preprocessing settings in the model's metadata."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from saunet.checkpoints import Checkpoint
from saunet.errors import InputError
from saunet.files import atomic_path


def export_onnx(checkpoint_path: str | Path | None, onnx_path: Path) -> Path:
    """A checkpoint (None: the shipped model) to ONNX, with what inference needs in the file's metadata.

    Args:
        checkpoint_path: a saunet checkpoint (.pt); None exports the shipped model.
        onnx_path: the file to write (atomically).

    Returns:
        ``onnx_path``.
    """
    from saunet.inference import DEFAULT_MODEL

    checkpoint = Checkpoint.load(checkpoint_path or DEFAULT_MODEL)
    return export_module_onnx(checkpoint.build_model(), onnx_path, {"saunet_checkpoint": json.dumps(checkpoint.metadata())})


class ChunkGraph(torch.nn.Module):
    """A model whose slices look at their neighbours (sau-net), as one graph with two inputs and three outputs:
    image (B, 1, D, H, W) -> image_logits (B, K, D, H, W) of those D slices alone and image_edges (B, 2, F, H, W),
    the features of the first and last of them; edges (B, 2, F, H, W), the features of the two slices either
    side of a boundary between chunks -> boundary_logits (B, K, 2, H, W), what those two slices' logits miss.

    ONNX Runtime runs only what the outputs asked for need: a whole volume asks for image_logits alone, a chunk
    for image_logits and image_edges, so no slice's full features leave the runtime.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image_edges, image_logits = self.model.edges_and_logits(image)
        return image_logits, image_edges, self.model.boundary_terms(edges)


def inference_form(model: torch.nn.Module) -> torch.nn.Module:
    """The model as exported: a Dense U-Net's blocks sum convolutions of their parts instead of concatenating
    them (:meth:`DenseUNet2d.sum_concatenations`, batch norm folded); other models as they are."""
    from saunet.models.dense_unet import DenseUNet2d

    if not isinstance(getattr(getattr(model, "slice_features", None), "net2d", None), DenseUNet2d):
        return model
    model = copy.deepcopy(model).eval()
    model.slice_features.net2d.sum_concatenations()
    return model


def export_module_onnx(model: torch.nn.Module, onnx_path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Export with dynamic D, H and W; the file is written under a temporary name, then renamed.

    A model with ``boundary_terms`` (sau-net) is exported as :class:`ChunkGraph`, otherwise as image -> logits;
    both in their :func:`inference_form`.

    Args:
        model: a model of :mod:`saunet.models` (its ``slice_halo`` goes into the metadata).
        onnx_path: the file to write.
        metadata: further metadata entries (key -> string), e.g. the checkpoint record.

    Returns:
        ``onnx_path``.
    """
    import onnx

    model = inference_form(model)

    image = torch.zeros(1, 1, 5, 61, 67)  # odd sizes, so the padding is traced
    volume_axes = {2: "slices", 3: "height", 4: "width"}
    if hasattr(model, "boundary_terms"):
        edges = torch.zeros(1, 2, model.head.conv.in_channels, 61, 67)
        module, example = ChunkGraph(model), (image, edges)
        names = {"input_names": ["image", "edges"], "output_names": ["image_logits", "image_edges", "boundary_logits"],
                 "dynamic_axes": {"image": volume_axes, "edges": {3: "height", 4: "width"},
                                  "image_logits": volume_axes, "image_edges": {3: "height", 4: "width"},
                                  "boundary_logits": {3: "height", 4: "width"}}}
    else:
        module, example = model, (image,)
        names = {"input_names": ["image"], "output_names": ["logits"],
                 "dynamic_axes": {"image": volume_axes, "logits": volume_axes}}
    with atomic_path(onnx_path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), example, str(tmp), dynamo=False, **names)
        proto = onnx.load(str(tmp))
        facts = {"saunet_slice_halo": json.dumps(getattr(model, "slice_halo", None))}  # read by OnnxModel
        for key, value in {**facts, **(metadata or {})}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
    return onnx_path


def export_inference_checkpoint(checkpoint_path: str | Path, out_path: Path) -> Path:
    """A slim checkpoint for shipping: the model and what inference needs, without the optimiser state."""
    return Checkpoint.load(checkpoint_path).save(out_path, with_optimizer=False)


CALIBRATION_SLICES = 12  # slices per calibration chunk: the chunks `saunet segment` runs (inference.CHUNK_SLICES)
CALIBRATION_SCANS = 3  # per data set


def calibration_scans(sources: list[Path]) -> list[Path]:
    """Scans to calibrate with: each scan file given, and the first ``CALIBRATION_SCANS`` images (by name) of each
    data set folder given (nnU-Net layout, as for training)."""
    from saunet.datasets import list_cases

    scans = []
    for source in sources:
        if source.is_dir():
            scans += [case.image for case in sorted(list_cases(source), key=lambda c: c.name)[:CALIBRATION_SCANS]]
        elif source.exists():
            scans.append(source)
        else:
            raise InputError(source, "no such scan or data-set folder")
    return scans


def network_images(checkpoint: Checkpoint, scans: list[Path]) -> list:
    """Each scan as the network of ``checkpoint`` sees it: (1, 1, D, H', W') float32 on its grid, its middle slices."""
    from saunet.imageio import read_volume
    from saunet.orientation import volume_layout
    from saunet.preprocessing import Preprocessor

    preprocessor = Preprocessor(checkpoint.preprocessing)
    images = []
    for scan in scans:
        volume = read_volume(scan)
        grid = preprocessor.grid(volume.array.shape, volume.spacing, volume_layout(volume, checkpoint.slice_axis))
        image = preprocessor.image(volume.array, grid)
        middle = max(image.shape[0] // 2 - CALIBRATION_SLICES // 2, 0)
        images.append(image[None, None, middle : middle + CALIBRATION_SLICES].copy())
    return images


def quantize_onnx(onnx_path: Path, scans: list[Path], out_path: Path) -> Path:
    """An ONNX export with 8-bit integer weights and activations (ONNX Runtime's static quantization, QDQ format,
    weights per channel), its activation ranges calibrated on the middle slices of ``scans`` (scans like those it will
    segment: activations beyond the ranges are cut). Written atomically."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from saunet.inference import load_model

    model = load_model(onnx_path, "cpu", bf16=False, channels_last=False)  # refuses an export without saunet's metadata
    feeds = []
    for image in network_images(model.checkpoint, scans):
        feed = {"image": image}
        if model.has_boundary_terms:  # the boundary graph's input: the features either side of a chunk boundary
            edges, _ = model.edges_and_logits(image)
            feed["edges"] = np.concatenate([edges[:, 1:], edges[:, :1]], axis=1)
        feeds.append(feed)

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.left = iter(feeds)

        def get_next(self):
            return next(self.left, None)

    quiet = logging.getLogger()  # ONNX Runtime's quantizer advises on the root logger, e.g. to pre-process first
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with atomic_path(out_path) as tmp:  # the export's metadata comes along
            quantize_static(str(onnx_path), str(tmp), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        quiet.setLevel(level)
    return out_path
