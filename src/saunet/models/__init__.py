"""The model family: ``create(name, **kwargs)`` gives a module mapping (B, C, D, H, W) to logits (B, K, D, H, W)."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
from torch import nn

from saunet.models.baselines import UNet2d, UNet3d
from saunet.models.dense_unet import DenseUNet
from saunet.models.sau_net import SAUNet

MODELS: dict[str, type[nn.Module]] = {
    "sau-net": SAUNet,
    "dense-unet": DenseUNet,
    "unet2d": UNet2d,
    "unet3d": UNet3d,
}

# The paper's width (about 38 M parameters for SAU-Net): create("sau-net", **PAPER_WIDTH).
PAPER_WIDTH: dict[str, Any] = {"features": (64, 128, 256, 512, 1024), "growth": 172, "layers": 4}


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build the model ``name`` (one of :data:`MODELS`) with its keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    for key in ("features",):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return MODELS[name](**kwargs)


def full_arguments(name: str, **kwargs: Any) -> dict[str, Any]:
    """Every constructor argument of model ``name``, defaults filled in: what a checkpoint must store so that
    a later change of a default cannot change the network it rebuilds."""
    bound = inspect.signature(MODELS[name].__init__).bind(None, **kwargs)
    bound.apply_defaults()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in list(bound.arguments.items())[1:]}


def takes_argument(name: str, argument: str) -> bool:
    """Whether model ``name``'s constructor has the argument (``growth``: the densely connected models)."""
    return name in MODELS and argument in inspect.signature(MODELS[name].__init__).parameters


def slice_halo(name: str) -> int | None:
    """Slices on each side that one output slice of model ``name`` depends on; None: the whole volume."""
    return MODELS[name].slice_halo


def is_volumetric(name: str) -> bool:
    """Whether model ``name`` is a 3D network (trained on 3D patches, never chunked)."""
    return MODELS[name].volumetric


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Floating-point operations (2 per multiply-add) of one forward pass on an input of ``shape``.

    Counted on a copy on the meta device: nothing is computed, so it is instant for any shape.
    """
    from torch.utils.flop_counter import FlopCounterMode

    meta_model = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta_model(torch.zeros(shape, device="meta"))
    return counter.get_total_flops()
