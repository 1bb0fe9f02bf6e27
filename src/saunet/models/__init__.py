"""The model family: ``create(name, **kwargs)`` gives a module mapping (B, C, D, H, W) to logits (B, K, D, H, W)."""

from __future__ import annotations

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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Floating-point operations (2 per multiply-add) of one forward pass on a zero tensor of ``shape``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    with counter, torch.no_grad():
        model(torch.zeros(shape))
    model.train(was_training)
    return counter.get_total_flops()
