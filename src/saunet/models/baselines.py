"""The paper's baselines, taken from MONAI: a 2D U-Net run slice by slice and a 3D U-Net."""

from __future__ import annotations

import torch
from torch import nn

from saunet.models.dense_unet import PerSlice, pad_to_multiple, slices_to_volume


class UNet2d(nn.Module):
    """MONAI ``BasicUNet`` (2D) on every slice: (B, C, D, H, W) -> logits (B, K, D, H, W)."""

    slice_halo = 0
    volumetric = False

    def __init__(self, in_channels: int = 1, out_channels: int = 1, features=(16, 32, 64, 128, 256, 16)):
        super().__init__()
        from monai.networks.nets import BasicUNet  # imported here: MONAI is slow to import and SAU-Net needs none of it

        net = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, features=features)
        self.per_slice = PerSlice(net, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return slices_to_volume(self.per_slice(x))


class UNet3d(nn.Module):
    """MONAI ``BasicUNet`` (3D) on the whole volume: (B, C, D, H, W) -> logits (B, K, D, H, W).

    The same widths as :class:`UNet2d`, so the two baselines differ only in 2D against 3D convolutions.

    D, H and W are padded to multiples of 16 (four poolings) and cropped back.
    """

    slice_halo = None  # every output slice depends on the whole volume: never chunked
    volumetric = True  # trained on 3D patches

    def __init__(self, in_channels: int = 1, out_channels: int = 1, features=(16, 32, 64, 128, 256, 16)):
        super().__init__()
        from monai.networks.nets import BasicUNet

        self.net = BasicUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, features=features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[-3:]
        return self.net(pad_to_multiple(x, 16, dims=3))[..., :d, :h, :w]
