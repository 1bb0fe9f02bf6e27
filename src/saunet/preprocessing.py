"""The invertible preprocessing: slice-first, in-plane resampling, intensity normalisation.

``Preprocessor.forward`` maps a volume to the network's grid (D, H', W'); ``Preprocessor.inverse`` maps a
map on that grid back onto the volume's own grid. Slices are never resampled across: the method works on
the native sagittal slices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PreprocessingSettings:
    """What a checkpoint stores so that inference prepares scans exactly as training did."""

    in_plane_spacing: float | None = 2.5  # mm; None keeps the native in-plane grid
    clip_percentiles: tuple[float, float] = (0.5, 99.5)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PreprocessingSettings":
        values = dict(values)
        values["clip_percentiles"] = tuple(values["clip_percentiles"])
        return cls(**values)


@dataclass(frozen=True)
class Grid:
    """How one volume was mapped: its slice axis, native shape and spacing (slice-first), and the network's shape."""

    slice_axis: int
    native_shape: tuple[int, int, int]
    native_spacing: tuple[float, float, float]
    network_shape: tuple[int, int, int]


def to_slice_first(array: np.ndarray, slice_axis: int) -> np.ndarray:
    return np.moveaxis(array, slice_axis, 0)


def from_slice_first(array: np.ndarray, slice_axis: int) -> np.ndarray:
    return np.moveaxis(array, 0, slice_axis)


def normalise_intensities(slices: np.ndarray, clip_percentiles: tuple[float, float]) -> np.ndarray:
    """Clip to percentiles, then zero mean and unit variance over the volume."""
    low, high = np.percentile(slices, clip_percentiles)
    clipped = np.clip(slices.astype(np.float32), low, high)
    return ((clipped - clipped.mean()) / max(float(clipped.std()), 1e-6)).astype(np.float32)


def resize_in_plane(slices: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """(D, C, H, W) -> (D, C, *size); 'area' when shrinking images, 'bilinear' otherwise, 'nearest' for labels."""
    if tuple(slices.shape[-2:]) == tuple(size):
        return slices
    if mode == "nearest":
        return F.interpolate(slices, size=size, mode="nearest-exact")
    shrinking = size[0] <= slices.shape[-2] and size[1] <= slices.shape[-1]
    if mode == "image" and shrinking:
        return F.interpolate(slices, size=size, mode="area")
    return F.interpolate(slices, size=size, mode="bilinear", align_corners=False)


class Preprocessor:
    def __init__(self, settings: PreprocessingSettings):
        self.settings = settings

    def grid(self, shape: tuple[int, ...], spacing: tuple[float, ...], slice_axis: int) -> Grid:
        order = [slice_axis] + [a for a in range(3) if a != slice_axis]  # the axes of to_slice_first
        native_shape = tuple(int(shape[a]) for a in order)
        native_spacing = tuple(float(spacing[a]) for a in order)
        target = self.settings.in_plane_spacing
        if target is None:
            network_shape = native_shape
        else:
            network_shape = (native_shape[0],) + tuple(
                max(1, round(n * s / target)) for n, s in zip(native_shape[1:], native_spacing[1:])
            )
        return Grid(slice_axis, native_shape, native_spacing, network_shape)

    def image(self, array: np.ndarray, grid: Grid) -> np.ndarray:
        """Volume array -> normalised float32 slices on the network grid, (D, H', W')."""
        slices = normalise_intensities(to_slice_first(array, grid.slice_axis), self.settings.clip_percentiles)
        resized = resize_in_plane(torch.from_numpy(np.ascontiguousarray(slices))[:, None], grid.network_shape[1:], "image")
        return resized[:, 0].numpy()

    def label(self, array: np.ndarray, grid: Grid) -> np.ndarray:
        """Label array -> labels on the network grid (nearest neighbour), (D, H', W')."""
        slices = torch.from_numpy(np.ascontiguousarray(to_slice_first(array, grid.slice_axis)).astype(np.float32))
        return resize_in_plane(slices[:, None], grid.network_shape[1:], "nearest")[:, 0].numpy().astype(array.dtype)

    def inverse(self, maps: torch.Tensor, grid: Grid) -> np.ndarray:
        """Maps on the network grid (K, D, H', W') -> (K, *original shape), bilinear in-plane."""
        per_slice = maps.transpose(0, 1).float()  # (D, K, H', W')
        native = resize_in_plane(per_slice, grid.native_shape[1:], "bilinear").transpose(0, 1).numpy()
        return np.moveaxis(native, 1, 1 + grid.slice_axis)
