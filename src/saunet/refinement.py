"""Outline refinement: a small 2D network at the scan's own in-plane grid redraws each vertebral body's outline
near the level map the level network made on its coarser grid (reports/levels/refine).

The refiner sees one sagittal slice and says body or not, only within :data:`RADIUS` pixels of the level map's
bodies; every voxel it keeps takes the level of the nearest body voxel of the level map in its slice, and a piece of
a level that holds none of that level's voxels of the level map (an island the refiner drew) is dropped, and so are a
body's lateral end slices under a fifth of its largest slice (:func:`saunet.postprocessing.trimmed_lateral_ends`). Which bodies
there are, their names, and the sacrum stay the level network's and post-processing's business.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from saunet.errors import InputError
from saunet.postprocessing import label_components, trimmed_lateral_ends
from saunet.preprocessing import resize_in_plane
from saunet.quality import CLIP_PERCENTILES  # noqa: F401 - the units the refiner sees scans in, as QC's statistics

RADIUS = 4  # pixels around a body where the refiner decides
PAD = 16  # pixels of context around the bodies; also what the network's input sizes must be multiples of
NATIVE_MM = (0.9, 1.4)  # in-plane pixel sizes run as they are (trained: 1.0 and 1.25 mm, scaled 0.9-1.1)
RESAMPLED_MM = 1.0  # the pixel size the refiner sees scans of other in-plane spacing at
SHIPPED = Path(__file__).parent / "weights" / "outline_refiner.onnx"
# the shipped fallback's: trained with random contrast curves, as the fallback is, for the contrasts it is handed
SHIPPED_FOR_FALLBACK = Path(__file__).parent / "weights" / "outline_refiner_curves.onnx"


class OutlineRefiner:
    """The exported refiner run with ONNX Runtime: (N, 1, H, W) normalised slices -> (N, 1, H, W) body logits."""

    def __init__(self, path: str | Path = SHIPPED):
        import onnxruntime

        from saunet.inference import session_options

        try:
            self.session = onnxruntime.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise InputError(path, f"not a readable ONNX model ({str(err).splitlines()[0][:120]})") from None
        self.path = Path(path)

    def __call__(self, slices: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"slices": slices.astype(np.float32)})[0]


# Dilation, nearest body and pieces by numpy and SimpleITK rather than scipy.ndimage, whose import costs every
# `saunet segment` process time (reports/speed-ups.md).
def disc_shifts(array: np.ndarray, radius: int, fill) -> Iterator[tuple[int, np.ndarray]]:
    """(S, H, W) -> (squared distance, the array shifted in-plane by it) for every offset within a disc of ``radius``
    pixels, nearest first; ``fill`` where a shift brings in pixels from beyond the array."""
    height, width = array.shape[1:]
    padded = np.pad(array, ((0, 0), (radius, radius), (radius, radius)), constant_values=fill)
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    squared = y * y + x * x
    for dy, dx in sorted(np.argwhere(squared <= radius * radius).tolist(), key=lambda at: squared[at[0], at[1]]):
        yield int(squared[dy, dx]), padded[:, dy:dy + height, dx:dx + width]


def in_plane_dilation(mask: np.ndarray, radius: int) -> np.ndarray:
    """(S, H, W) -> dilated within each slice by a disc of ``radius`` pixels."""
    dilated = np.zeros(mask.shape, bool)
    for _, shifted in disc_shifts(mask, radius, False):
        dilated |= shifted
    return dilated


def widened(box: tuple[slice, slice, slice], shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    """A canonical box grown in-plane by :data:`RADIUS`, inside ``shape``: where a refined body may lie."""
    grown = [slice(max(part.start - RADIUS, 0), min(part.stop + RADIUS, size)) for part, size in zip(box[1:], shape[1:])]
    return box[0], *grown


def network_size(size: int) -> int:
    return size + (-size % PAD)


def body_logits(refiner, image: np.ndarray, region: np.ndarray, pixel_mm: tuple[float, float]) -> np.ndarray:
    """The refiner's body logits (S, H, W) over the bodies' slices and in-plane box (0 elsewhere, where nothing is
    decided), for the normalised ``image`` (S, H, W) of pixels ``pixel_mm``; other pixel sizes than :data:`NATIVE_MM`
    are resampled to :data:`RESAMPLED_MM` and the logits back."""
    decided = np.zeros(image.shape, np.float32)
    occupied = np.argwhere(region)
    if not len(occupied):
        return decided
    low, high = occupied.min(0), occupied.max(0) + 1
    in_plane = (slice(max(lo - PAD, 0), min(hi + PAD, n)) for lo, hi, n in zip(low[1:], high[1:], image.shape[1:]))
    box = (slice(low[0], high[0]), *in_plane)
    crop = image[box]
    size = crop.shape[1:]
    if not all(NATIVE_MM[0] <= mm <= NATIVE_MM[1] for mm in pixel_mm):
        size = tuple(max(int(round(n * mm / RESAMPLED_MM)), 1) for n, mm in zip(size, pixel_mm))
    seen = resize_in_plane(crop, size, "image")
    padding = [(0, 0), *((0, network_size(n) - n) for n in size)]
    logits = refiner(np.pad(seen, padding, mode="edge")[:, None])[:, 0, :size[0], :size[1]]
    logits = resize_in_plane(np.ascontiguousarray(logits), crop.shape[1:], "linear")
    decided[box] = logits
    return decided


def nearest_levels(levels: np.ndarray, body: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """Each voxel of ``body`` (S, H, W) named as the nearest labelled voxel of ``levels`` in its slice within ``radius``
    pixels (the lower level where two are as near); a voxel with none so near stays empty. The refiner decides only
    within :data:`RADIUS` of the level map's bodies, so every voxel it keeps has one."""
    out = np.zeros_like(levels)
    pending = body.copy()
    none = np.iinfo(levels.dtype).max  # above every level: the minimum over a ring is the lower level on a tie
    for _, ring in itertools.groupby(disc_shifts(np.where(levels > 0, levels, none), radius, none), key=lambda s: s[0]):
        nearest = np.full(levels.shape, none, levels.dtype)
        for _, shifted in ring:
            np.minimum(nearest, shifted, out=nearest)
        found = pending & (nearest != none)
        out[found] = nearest[found]
        pending &= ~found
        if not pending.any():
            break
    return out


def anchored(redrawn: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``redrawn`` without the pieces of a level (face-connected) that hold no voxel of that level in ``levels``:
    the refiner moves outlines, it does not draw new islands."""
    kept = np.zeros_like(redrawn)
    for level in np.unique(redrawn[redrawn > 0]):
        pieces = label_components(redrawn == level, fully_connected=False)
        holding = np.unique(pieces[levels == level])
        kept[np.isin(pieces, holding[holding > 0])] = level
    return kept


def refine(refiner, levels: np.ndarray, image: np.ndarray, pixel_mm: tuple[float, float]) -> np.ndarray:
    """(S, H, W) level map (canonical layout) and the scan normalised as the network saw it -> the refined map."""
    region = in_plane_dilation(levels > 0, RADIUS)
    redrawn = nearest_levels(levels, region & (body_logits(refiner, image, region, pixel_mm) > 0))
    return trimmed_lateral_ends(anchored(redrawn, levels))
