"""The paper's Dense U-Net (section 3.1), applied to every sagittal slice on its own."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """3x3 convolution, batch norm, ReLU: (N, in_ch, H, W) -> (N, out_ch, H, W)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DenseConvs(nn.Module):
    """Densely connected convolutions (DC in the paper's Figure 1).

    Convolution j sees the concatenation of the block input and the outputs of convolutions 0..j-1;
    a 1x1 transition compresses the concatenation of everything to ``out_ch``.
    The block input comes as a list of parts (an UpBlock's upsampled map and skip) that together have ``in_ch``
    channels: [(N, c_k, H, W)] -> (N, out_ch, H, W). :class:`SummedDenseConvs` is the same block for inference.
    """

    def __init__(self, in_ch: int, out_ch: int, growth: int, layers: int):
        super().__init__()
        self.convs = nn.ModuleList(ConvBNReLU(in_ch + j * growth, growth) for j in range(layers))
        self.transition = nn.Sequential(
            nn.Conv2d(in_ch + layers * growth, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        features = list(parts)
        for conv in self.convs:
            features.append(conv(torch.cat(features, dim=1)))
        return self.transition(torch.cat(features, dim=1))


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a bias-free ``conv`` followed by ``bn`` in inference mode, as one convolution."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale


class SplitConv(nn.Module):
    """A convolution of a concatenation, as the sum of one convolution per part (BN folded, then ReLU): no copy
    of the parts into one tensor. [(N, c_k, H, W)] -> (N, out, H, W)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, part_channels: list[int]):
        super().__init__()
        self.parts = nn.ModuleList()
        for k, part in enumerate(torch.split(weight, part_channels, dim=1)):
            conv = nn.Conv2d(part.shape[1], part.shape[0], part.shape[-1], padding=part.shape[-1] // 2, bias=k == 0)
            conv.weight.data = part.detach().clone()
            if k == 0:
                conv.bias.data = bias.detach().clone()
            self.parts.append(conv)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        total = self.parts[0](parts[0])
        for conv, part in zip(self.parts[1:], parts[1:]):
            total = total + conv(part)
        return torch.relu(total)


class SummedDenseConvs(nn.Module):
    """:class:`DenseConvs` for inference, the same function (batch norm in inference mode): every convolution
    of a concatenation is a sum of convolutions of its parts, so the features are never concatenated. ONNX
    Runtime adds each part's convolution into the output: 24 % faster on the last UpBlock's shape, where the
    concatenations were copies of up to 64 full-resolution channels.
    [(N, c_k, H, W)] -> (N, out_ch, H, W)."""

    def __init__(self, block: DenseConvs, part_channels: list[int]):
        super().__init__()
        growth = block.convs[0][0].out_channels
        self.convs = nn.ModuleList(
            SplitConv(*_folded(conv[0], conv[1]), [*part_channels, *[growth] * j]) for j, conv in enumerate(block.convs)
        )
        self.transition = SplitConv(*_folded(block.transition[0], block.transition[1]),
                                    [*part_channels, *[growth] * len(block.convs)])

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        features = list(parts)
        for conv in self.convs:
            features.append(conv(features))
        return self.transition(features)


class DownBlock(nn.Module):
    """Dense convolutions, then 2x2 max-pooling.

    (N, in_ch, H, W) -> skip (N, out_ch, H, W) and pooled (N, out_ch, H/2, W/2).
    """

    def __init__(self, in_ch: int, out_ch: int, growth: int, layers: int):
        super().__init__()
        self.dense = DenseConvs(in_ch, out_ch, growth, layers)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.dense([x])
        return skip, self.pool(skip)


class UpBlock(nn.Module):
    """Transposed convolution of the coarser map, concatenation with the encoder's skip, dense convolutions.

    The paper draws the deconvolution at the end of each UpBlock; putting it at the start of the next one
    is the same network and keeps each block's input and skip side by side.
    (N, in_ch, H/2, W/2) and skip (N, skip_ch, H, W) -> (N, out_ch, H, W).
    """

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, growth: int, layers: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_ch, in_ch // 2, 2, stride=2)
        self.dense = DenseConvs(in_ch // 2 + skip_ch, out_ch, growth, layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.dense([self.deconv(x), skip])


class DenseUNet2d(nn.Module):
    """Dense U-Net on 2D slices: (N, in_channels, H, W) -> features (N, features[0], H, W).

    H and W must be multiples of 2 ** (len(features) - 1); :class:`DenseUNet` pads for that.
    """

    def __init__(self, in_channels: int, features: tuple[int, ...], growth: int, layers: int):
        super().__init__()
        chans = [in_channels, *features]
        self.down = nn.ModuleList(
            DownBlock(chans[i], chans[i + 1], growth, layers) for i in range(len(features) - 1)
        )
        self.bottom = DenseConvs(features[-2], features[-1], growth, layers)
        self.up = nn.ModuleList(
            UpBlock(features[i + 1], features[i], features[i], growth, layers)
            for i in reversed(range(len(features) - 1))
        )

    def sum_concatenations(self) -> DenseUNet2d:
        """Swap every dense block for :class:`SummedDenseConvs` (for inference only: batch norm is folded)."""
        for block in self.down:
            block.dense = SummedDenseConvs(block.dense, [block.dense.convs[0][0].in_channels])
        self.bottom = SummedDenseConvs(self.bottom, [self.bottom.convs[0][0].in_channels])
        for block in self.up:
            block.dense = SummedDenseConvs(block.dense, [block.deconv.out_channels,
                                                         block.dense.convs[0][0].in_channels - block.deconv.out_channels])
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            skip, x = block(x)
            skips.append(skip)
        x = self.bottom([x])
        for block, skip in zip(self.up, reversed(skips)):
            x = block(x, skip)
        return x


def pad_to_multiple(x: torch.Tensor, multiple: int, dims: int = 2) -> torch.Tensor:
    """Zero-pad the last ``dims`` dimensions at their end up to a multiple of ``multiple``."""
    pad: list[int] = []
    for size in reversed(x.shape[-dims:]):
        pad += [0, -size % multiple]
    return F.pad(x, pad)  # even when zero: an ONNX trace must record the padding for other shapes


class PerSlice(nn.Module):
    """Runs a 2D network on every sagittal slice: (B, C, D, H, W) -> (B, D, F, H, W).

    Slices are folded into the batch, padded to a multiple of ``multiple`` and cropped back, so output
    slice i depends on input slice i only, for any D >= 1 and any H, W.
    """

    def __init__(self, net2d: nn.Module, multiple: int):
        super().__init__()
        self.net2d = net2d
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        slices = x.transpose(1, 2).reshape(b * d, c, h, w)
        out = self.net2d(pad_to_multiple(slices, self.multiple))[..., :h, :w]
        return out.reshape(b, d, -1, h, w)


def slices_to_volume(per_slice: torch.Tensor) -> torch.Tensor:
    """(B, D, K, H, W) -> (B, K, D, H, W)."""
    return per_slice.transpose(1, 2)


class Head(nn.Module):
    """1x1 convolution of every slice's features to K logits: (B, D, F, H, W) -> (B, D, K, H, W)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, d, f, h, w = feats.shape
        return self.conv(feats.reshape(b * d, f, h, w)).reshape(b, d, -1, h, w)


class DenseUNet(nn.Module):
    """Dense U-Net applied slice by slice: (B, C, D, H, W) -> logits (B, K, D, H, W).

    Output slice i depends on input slice i only.
    """

    slice_halo = 0  # neighbouring slices on each side that one output slice depends on
    volumetric = False  # a 2D model: trained on short stacks of slices, run on chunks of any length

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: tuple[int, ...] = (16, 32, 64, 128, 256, 256),
        growth: int = 16,  # a multiple of 16 keeps oneDNN's channel blocks full (reports/speed-ups.md)
        layers: int = 2,
    ):
        super().__init__()
        self.slice_features = PerSlice(
            DenseUNet2d(in_channels, tuple(features), growth, layers), 2 ** (len(features) - 1)
        )
        self.head = Head(features[0], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.slice_features(x))

    def decode(self, feats: torch.Tensor) -> torch.Tensor:
        """Every slice's features (B, D, F, H, W) -> logits (B, K, D, H, W)."""
        return slices_to_volume(self.head(feats))
