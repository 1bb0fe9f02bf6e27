"""SAU-Net: Dense U-Net slice features refined by the inter-slice attention module (section 3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        """Sigmoid of a 1x1 convolution of every slice: (B, D, C, H, W) -> (B, D, C, H, W)."""
        b, d, c, h, w = feats.shape
        return torch.sigmoid(conv(feats.reshape(b * d, c, h, w))).reshape(b, d, c, h, w)

    @staticmethod
    def _shift(masks: torch.Tensor, by: int) -> torch.Tensor:
        """Move every slice's mask one slice along D (by=+1: slice i gets slice i-1's, by=-1: slice i+1's);
        the slice with no such neighbour gets a zero mask. Padding, not a branch on D, keeps ONNX exports valid."""
        if by == 1:
            return F.pad(masks, (0, 0, 0, 0, 0, 0, 1, 0))[:, :-1]
        return F.pad(masks, (0, 0, 0, 0, 0, 0, 0, 1))[:, 1:]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        # Masks are computed once per slice and then shifted, rather than shifting the (larger) features:
        # fewer full-size copies, which is most of this module's cost on a CPU.
        mask_previous = self._shift(self._masks(self.mask_from_previous, feats), 1)  # M_(i-1) at slice i
        mask_next = self._shift(self._masks(self.mask_from_next, feats), -1)  # M_(i+1) at slice i
        return feats * (1 + mask_previous + mask_next)


class SAUNet(DenseUNet):
    """SAU-Net: (B, C, D, H, W) -> logits (B, K, D, H, W).

    The Dense U-Net's features of every slice, attention fusion with the two neighbouring slices, a 1x1
    convolution to K channels (apply a sigmoid for the binary task, as the paper). Output slice i depends
    on input slices i-1, i and i+1 only. Same arguments as :class:`DenseUNet`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.isa = AttentionFusion(self.head.conv.in_channels)

    def decode(self, feats: torch.Tensor) -> torch.Tensor:
        """Every slice's features (B, D, F, H, W) -> logits (B, K, D, H, W), each slice fused with its neighbours."""
        return slices_to_volume(self.head(self.isa(feats)))
