"""Post-processing of a label map on the input's grid: one entry point, :func:`postprocess`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

MIN_COMPONENT_MM3 = 1000.0  # a vertebral body is about 30 000 mm^3; smaller islands are false positives


@dataclass(frozen=True)
class PostprocessingSettings:
    """Islands under ``min_component_mm3`` are removed; of the rest, the ``max_components`` largest are kept
    (0 keeps all; training records the median number of bodies in its masks)."""

    min_component_mm3: float = MIN_COMPONENT_MM3
    max_components: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def label_components(mask: np.ndarray) -> np.ndarray:
    """Connected components (26-connectivity in 3D): 0 for background, 1..N for the components."""
    # SimpleITK rather than scipy.ndimage: it is loaded for the images anyway, and importing scipy.ndimage
    # costs every `saunet segment` process time (reports/speed-ups.md).
    return sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True))


def clean_mask(mask: np.ndarray, spacing: tuple[float, ...], min_mm3: float, max_components: int = 0) -> np.ndarray:
    """Drop connected components smaller than ``min_mm3`` cubic millimetres and keep at most the
    ``max_components`` largest of the rest (0: all of them)."""
    if (min_mm3 <= 0 and max_components <= 0) or not mask.any():
        return mask
    components = label_components(mask)
    sizes = np.bincount(components.ravel()) * float(np.prod(spacing))
    sizes[0] = 0.0  # the background
    keep = sizes >= min_mm3
    keep[0] = False
    if 0 < max_components < keep.sum():
        keep[np.argsort(sizes)[: len(sizes) - max_components]] = False
    return keep[components]


def postprocess(labels: np.ndarray, spacing: tuple[float, ...], settings: PostprocessingSettings) -> np.ndarray:
    """Classes 0..K on the input's grid -> the same with the foreground's components cleaned
    (:func:`clean_mask`); the classes of the voxels kept are unchanged."""
    foreground = clean_mask(labels > 0, spacing, settings.min_component_mm3, settings.max_components)
    return np.where(foreground, labels, 0).astype(np.uint8)
