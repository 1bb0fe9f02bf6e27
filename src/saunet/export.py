"""``saunet export``: a checkpoint to ONNX, with its preprocessing settings in the model's metadata."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from saunet.training import load_checkpoint, model_from_checkpoint

METADATA_KEYS = ("model", "model_kwargs", "preprocessing", "label_map", "slice_axis")


def export_onnx(checkpoint_path: str | Path | None, onnx_path: Path) -> Path:
    """A checkpoint (None: the shipped model) to ONNX, with what inference needs in the file's metadata."""
    from saunet.inference import DEFAULT_MODEL

    checkpoint = load_checkpoint(checkpoint_path or DEFAULT_MODEL)
    return export_module_onnx(model_from_checkpoint(checkpoint), onnx_path,
                              {"saunet_checkpoint": json.dumps({k: checkpoint[k] for k in METADATA_KEYS})})


def export_module_onnx(model: torch.nn.Module, onnx_path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Export with dynamic D, H and W; the file is written under a temporary name, then renamed."""
    import onnx

    example = torch.zeros(1, 1, 5, 61, 67)  # odd sizes, so the padding is traced
    axes = {2: "slices", 3: "height", 4: "width"}
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(".tmp-" + onnx_path.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(tmp), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, dynamo=False)
    proto = onnx.load(str(tmp))
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(tmp))
    os.replace(tmp, onnx_path)
    return onnx_path


def export_inference_checkpoint(checkpoint_path: str | Path, out_path: Path) -> Path:
    """A slim checkpoint for shipping: the model and what inference needs, without the optimiser state."""
    from saunet.training import save_atomic

    checkpoint = load_checkpoint(checkpoint_path)
    slim = {k: v for k, v in checkpoint.items() if k != "optimizer"}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(slim, out_path)
    return out_path
