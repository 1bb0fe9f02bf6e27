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
        the slice with no such neighbour gets a zero mask. One Pad with a negative end (a crop) rather than a
        pad and a slice: one copy of the masks instead of two, and no branch on D, so ONNX exports stay valid."""
        return F.pad(masks, (0, 0, 0, 0, 0, 0, by, -by))

    def across_boundary(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """The fusion terms that two neighbouring slices give each other: F_before * M_(next)(after) for the
        slice before and F_after * M_(previous)(before) for the slice after.
        (B, 1, C, H, W) twice -> (B, 2, C, H, W)."""
        return torch.cat([before * self._masks(self.mask_from_next, after),
                          after * self._masks(self.mask_from_previous, before)], dim=1)

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

    slice_halo = 1

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: tuple[int, ...] = (16, 32, 64, 128, 256, 256),
        growth: int = 16,
        layers: int = 2,
    ):
        super().__init__(in_channels, out_channels, features, growth, layers)
        self.isa = AttentionFusion(self.head.conv.in_channels)

    def decode(self, feats: torch.Tensor) -> torch.Tensor:
        """Every slice's features (B, D, F, H, W) -> logits (B, K, D, H, W), each slice fused with its neighbours."""
        return slices_to_volume(self.head(self.isa(feats)))

    def edges_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A chunk of slices decoded on its own: (B, C, D, H, W) -> the features of its first and last slice
        (B, 2, F, H, W) and its logits (B, K, D, H, W), in which the first and last slice miss their outside
        neighbour (see :meth:`boundary_terms`)."""
        feats = self.slice_features(x)
        return torch.cat([feats[:, :1], feats[:, -1:]], dim=1), self.decode(feats)

    def boundary_terms(self, edges: torch.Tensor) -> torch.Tensor:
        """Features of the two slices either side of a boundary between chunks (B, 2, F, H, W) -> what the
        logits of those two slices (B, K, 2, H, W) miss when each chunk is decoded on its own.

        The fusion adds one term per neighbour and the head is linear, so the missing term, sent through the
        head's weights without its bias, adds to those logits: chunked logits plus these equal the logits of
        the whole volume, for the cost of two slices instead of decoding the boundary slices again.
        """
        terms = self.isa.across_boundary(edges[:, :1], edges[:, 1:])
        b, d, f, h, w = terms.shape
        logits = F.conv2d(terms.reshape(b * d, f, h, w), self.head.conv.weight)
        return slices_to_volume(logits.reshape(b, d, -1, h, w))
