"""SAU-Net: Dense U-Net slice features refined by the inter-slice attention module (section 3.2)."""

from __future__ import annotations

import torch
from torch import nn

from saunet.models.dense_unet import DenseUNet, slices_to_volume


class AttentionFusion(nn.Module):
    """The attention fusion of the paper's Figure 3.

    For slice i, a 1x1 convolution and a sigmoid turn the features of slice i-1 and of slice i+1 into
    masks of F's size; the output is F_i + F_i * M_(i-1) + F_i * M_(i+1). The first and last slice have
    one neighbour, so their fusion is halved.
    (B, D, C, H, W) -> (B, D, C, H, W).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.mask_from_previous = nn.Conv2d(channels, channels, 1)
        self.mask_from_next = nn.Conv2d(channels, channels, 1)

    @staticmethod
    def _masks(conv: nn.Conv2d, feats: torch.Tensor) -> torch.Tensor:
        """Sigmoid of a 1x1 convolution of every slice: (B, D', C, H, W) -> (B, D', C, H, W)."""
        b, d, c, h, w = feats.shape
        return torch.sigmoid(conv(feats.reshape(b * d, c, h, w))).reshape(b, d, c, h, w)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        # Shifted copies put each slice's neighbour beside it; a missing neighbour (first, last slice)
        # is zero and its mask is switched off. No branch on D, so an ONNX export works for any D.
        zeros = torch.zeros_like(feats[:, :1])
        previous = torch.cat([zeros, feats[:, :-1]], dim=1)  # F_(i-1)
        following = torch.cat([feats[:, 1:], zeros], dim=1)  # F_(i+1)
        index = torch.arange(feats.shape[1], device=feats.device).view(1, -1, 1, 1, 1)
        has_previous = (index > 0).to(feats.dtype)
        has_next = (index < feats.shape[1] - 1).to(feats.dtype)
        mask_previous = self._masks(self.mask_from_previous, previous) * has_previous
        mask_next = self._masks(self.mask_from_next, following) * has_next
        return feats + feats * mask_previous + feats * mask_next


class SAUNet(DenseUNet):
    """SAU-Net: (B, C, D, H, W) -> logits (B, K, D, H, W).

    The Dense U-Net's features of every slice, attention fusion with the two neighbouring slices, a 1x1
    convolution to K channels (apply a sigmoid for the binary task, as the paper). Output slice i depends
    on input slices i-1, i and i+1 only. Same arguments as :class:`DenseUNet`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.isa = AttentionFusion(self.head.conv.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return slices_to_volume(self.head(self.isa(self.slice_features(x))))
