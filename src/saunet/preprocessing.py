"""The invertible preprocessing: canonical layout, in-plane resampling, intensity normalisation.

``Preprocessor.image`` maps a volume to the network's grid (D, H', W') in the canonical layout
(:mod:`saunet.orientation`); ``Preprocessor.inverse`` maps a map on that grid back onto the volume's own
grid and array layout. Slices are never resampled across: the method works on the native sagittal slices.

Resampling is separable and linear, so each axis is one small matrix; the matrices reproduce PyTorch's
``interpolate`` modes (area, bilinear without corner alignment, nearest-exact) and keep the inference path
free of PyTorch (it runs on ONNX Runtime and NumPy alone).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from saunet.orientation import Layout


@dataclass(frozen=True)
class PreprocessingSettings:
    """What a checkpoint stores so that inference prepares scans exactly as training did."""

    # mm; None keeps the native in-plane grid. 1.875 mm (1.5x the lumbar scans' 1.25 mm) gained ~2 % Dice
    # over 2.5 mm in cross-validation; a 160-pixel crop still spans 300 mm, enough to count vertebrae.
    in_plane_spacing: float | None = 1.875
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
    """How one volume was mapped: its layout, native shape and spacing (canonical order), and the network's shape."""

    layout: Layout
    native_shape: tuple[int, int, int]
    native_spacing: tuple[float, float, float]
    network_shape: tuple[int, int, int]

    @property
    def network_spacing(self) -> tuple[float, float, float]:
        """mm between the network grid's samples, canonical order (slices as stored)."""
        return tuple(s * n / m for s, n, m in zip(self.native_spacing, self.native_shape, self.network_shape))


def normalise_intensities(slices: np.ndarray, clip_percentiles: tuple[float, float]) -> np.ndarray:
    """Clip to percentiles, then zero mean and unit variance over the volume."""
    low, high = np.percentile(slices, clip_percentiles)
    normalised = slices.astype(np.float32)  # the one copy: the rest works in place (a scan is tens of MB)
    np.clip(normalised, low, high, out=normalised)
    mean, std = normalised.mean(), max(float(normalised.std()), 1e-6)
    normalised -= mean
    normalised /= std
    return normalised


CURVE_KNOTS = 6  # points of a random intensity curve: a few tissues' brightness, each free


def random_curve(values: np.ndarray, rng: np.random.Generator, knots: int = CURVE_KNOTS) -> np.ndarray:
    """``values`` (float, any shape) through a random intensity curve: values drawn uniformly at ``knots`` evenly
    spaced points of their range, interpolated linearly, so any order of the tissues' brightness can come out (dark
    bodies among bright discs, as T1 shows them, or the reverse); their mean and spread (sample standard deviation)
    kept. A global intensity non-linearity for contrasts no training scan has (as GIN, Ouyang et al., IEEE TMI 2023)."""
    low, high = float(values.min()), float(values.max())
    unit = (values - low) / max(high - low, 1e-6)
    curved = np.interp(unit, np.linspace(0.0, 1.0, knots), rng.uniform(0.0, 1.0, knots))
    curved = (curved - curved.mean()) / max(float(curved.std(ddof=1)), 1e-6)
    return (curved * float(values.std(ddof=1)) + float(values.mean())).astype(values.dtype)


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) matrix averaging the input cells each output cell covers (PyTorch's 'area')."""
    weights = np.zeros((size_out, size_in), dtype=np.float32)
    for i in range(size_out):
        start, end = (i * size_in) // size_out, -((-(i + 1) * size_in) // size_out)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


def linear_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) linear interpolation matrix, pixel centres aligned (align_corners=False)."""
    source = np.maximum((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(int), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    frac = (source - low).astype(np.float32)
    weights = np.zeros((size_out, size_in), dtype=np.float32)
    np.add.at(weights, (np.arange(size_out), low), 1 - frac)
    np.add.at(weights, (np.arange(size_out), high), frac)
    return weights


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Input index of every output cell, nearest to its centre ('nearest-exact')."""
    return np.minimum(np.floor((np.arange(size_out) + 0.5) * size_in / size_out).astype(int), size_in - 1)


def resize_in_plane(slices: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """(..., H, W) -> C-contiguous (..., *size); 'area' when shrinking images, 'bilinear' otherwise, 'nearest'
    for labels."""
    (h, w), (new_h, new_w) = slices.shape[-2:], size
    if (h, w) == (new_h, new_w):
        return np.ascontiguousarray(slices)
    if mode == "nearest":
        return slices[..., nearest_indices(h, new_h)[:, None], nearest_indices(w, new_w)]
    weights = area_weights if mode == "image" and new_h <= h and new_w <= w else linear_weights
    return apply_weights(slices, weights(h, new_h), weights(w, new_w))


def apply_weights(slices: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(..., H, W) -> C-contiguous (..., H', W'): the separable resampling ``rows`` (H', H) and ``columns`` (W', W)."""
    resized = slices.astype(np.float32, copy=False)
    for axis, weights in ((-1, columns), (-2, rows)):
        # tensordot reshapes to one 2D product (BLAS), much faster than a broadcast matmul over the slices
        # (reports/speed-ups.md).
        resized = np.moveaxis(np.tensordot(resized, weights, axes=([axis], [1])), -1, axis)
    return np.ascontiguousarray(resized)


def support(weights: np.ndarray, inputs: slice) -> slice:
    """The range of output cells whose interpolation draws on any of the ``inputs`` cells; ``weights`` (out, in)."""
    drawn = np.flatnonzero(weights[:, inputs].any(1))
    return slice(int(drawn[0]), int(drawn[-1]) + 1)


def inverse_weights(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """The bilinear matrices from the network grid back to the native one: rows (H, H'), columns (W, W')."""
    return tuple(linear_weights(grid.network_shape[a], grid.native_shape[a]) for a in (1, 2))


class Preprocessor:
    def __init__(self, settings: PreprocessingSettings):
        self.settings = settings

    def grid(self, shape: tuple[int, ...], spacing: tuple[float, ...], layout: Layout) -> Grid:
        native_shape = tuple(int(shape[a]) for a in layout.axes)
        native_spacing = layout.spacing(spacing)
        target = self.settings.in_plane_spacing
        if target is None:
            network_shape = native_shape
        else:
            network_shape = (native_shape[0],) + tuple(
                max(1, round(n * s / target)) for n, s in zip(native_shape[1:], native_spacing[1:])
            )
        return Grid(layout, native_shape, native_spacing, network_shape)

    def image(self, array: np.ndarray, grid: Grid) -> np.ndarray:
        """Volume array -> normalised float32 slices on the network grid, (D, H', W')."""
        return self.image_like(self.normalised(array), grid)

    def normalised(self, array: np.ndarray) -> np.ndarray:
        """Volume array -> its intensities as the network sees them, float32 on the volume's own grid."""
        return normalise_intensities(array, self.settings.clip_percentiles)

    def image_like(self, array: np.ndarray, grid: Grid) -> np.ndarray:
        """Any volume array -> float32 slices on the network grid, resampled as images are, without
        normalising, (D, H', W')."""
        return resize_in_plane(grid.layout.to_canonical(array), grid.network_shape[1:], "image")

    def label(self, array: np.ndarray, grid: Grid, zoom: int = 1) -> np.ndarray:
        """Label array -> labels on the network grid (nearest neighbour), (D, H', W'); with ``zoom``, on a grid that
        many times finer in-plane, (D, zoom H', zoom W'), whose pixels tile the network grid's."""
        size = tuple(zoom * n for n in grid.network_shape[1:])
        return resize_in_plane(grid.layout.to_canonical(array), size, "nearest")

    def inverse(self, maps: np.ndarray, grid: Grid, box: tuple[slice, slice, slice] | None = None) -> np.ndarray:
        """Maps on the network grid (K, D, H', W') -> (K, *original shape) in the stored layout, bilinear in-plane;
        with ``box`` (native grid, canonical layout) only the voxels inside it, in the stored layout."""
        box = box or tuple(slice(0, n) for n in grid.native_shape)
        rows, columns = (weights[part] for weights, part in zip(inverse_weights(grid), box[1:]))
        rows_in, columns_in = support(rows.T, slice(None)), support(columns.T, slice(None))
        native = apply_weights(maps[:, box[0], rows_in, columns_in], rows[:, rows_in], columns[:, columns_in])
        return np.ascontiguousarray(grid.layout.from_canonical(native))

    def foreground_box(self, foreground: np.ndarray, grid: Grid) -> tuple[slice, slice, slice] | None:
        """The box of the native grid (canonical layout) outside which :meth:`inverse` of the network's logits
        decodes to background everywhere, from where they decode as ``foreground`` on the network grid (D, H', W'
        bool: :meth:`LabelMap.decoded_as_foreground`); None when nothing does.

        Bilinear weights are convex: a native voxel's logits are a mean of network pixels' logits, so a class
        outscores background there only beside a pixel where one does.
        """
        bounds = foreground_bounds(foreground)
        if bounds is None:
            return None
        row_weights, column_weights = inverse_weights(grid)
        return bounds[0], support(row_weights, bounds[1]), support(column_weights, bounds[2])


def foreground_bounds(foreground: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (one slice per axis) that holds every True voxel of ``foreground``; None when none is."""
    if not foreground.any():
        return None
    axes = range(foreground.ndim)
    spans = [np.flatnonzero(foreground.any(axis=tuple(a for a in axes if a != axis))) for axis in axes]
    return tuple(slice(int(span[0]), int(span[-1]) + 1) for span in spans)
