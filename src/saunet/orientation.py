"""One anatomical array layout for the models, from the header's direction matrix, and exactly back.

Scans come with their sagittal slices on any array axis and their in-plane axes in any order and sign; the
header's direction matrix says which. Every scan is brought into the **canonical layout** before
preprocessing, a pure permutation and reversal of array axes (no resampling), and every output is brought
back the same way onto the input's own grid:

    axis 0: the sagittal slices, running towards the patient's right
    axis 1: cranio-caudal, running towards superior
    axis 2: antero-posterior, running towards posterior

(the layout of the lumbar-t2 training scans). An oblique scan takes its nearest axes; its slices are never
resampled. Arrays here are in SimpleITK's order: numpy axis ``a`` is ITK index axis ``2 - a``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saunet.errors import InputError

# (LPS world axis, sign) each canonical axis runs towards: right is -x, superior +z, posterior +y.
CANONICAL = ((0, -1.0), (2, 1.0), (1, 1.0))
LETTERS = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}
ORTHONORMAL_TOLERANCE = 1e-3
# Beyond this angle between an array axis and its nearest anatomical axis the nearest-axis layout is a
# coarse approximation of what the model was trained on: segment warns.
OBLIQUE_WARNING_DEGREES = 25.0


@dataclass(frozen=True)
class Layout:
    """How a stored array maps to the canonical layout.

    ``axes[c]`` is the numpy axis of the stored array that becomes canonical axis ``c``; ``flips[c]`` says
    that it runs the other way. ``obliquity`` is the largest angle (degrees) between a stored axis and the
    anatomical axis it was taken for.
    """

    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    obliquity: float = 0.0

    @property
    def superior(self) -> tuple[int, int]:
        """The stored axis that runs cranio-caudally, and +1 or -1 for whether its index grows towards superior."""
        return self.axes[1], -1 if self.flips[1] else 1

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """Stored (..., a0, a1, a2) -> canonical (..., slices, superior, posterior); leading axes untouched."""
        lead = array.ndim - 3
        view = np.transpose(array, (*range(lead), *(lead + a for a in self.axes)))
        return view[(Ellipsis, *(slice(None, None, -1) if f else slice(None) for f in self.flips))]

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Canonical (..., slices, superior, posterior) -> the stored layout; the inverse of ``to_canonical``."""
        lead = array.ndim - 3
        unflipped = array[(Ellipsis, *(slice(None, None, -1) if f else slice(None) for f in self.flips))]
        return np.transpose(unflipped, (*range(lead), *(lead + int(c) for c in np.argsort(self.axes))))

    def stored_box(self, box: tuple[slice, slice, slice], shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
        """A box of the canonical layout (a range per canonical axis of an array of canonical ``shape``) -> the
        same voxels' box in the stored array, a range per stored axis."""
        stored: list[slice] = [slice(None)] * 3
        for part, axis, flip, size in zip(box, self.axes, self.flips, shape):
            start, stop, _ = part.indices(size)
            stored[axis] = slice(size - stop, size - start) if flip else slice(start, stop)
        return tuple(stored)

    def spacing(self, spacing: tuple[float, ...]) -> tuple[float, float, float]:
        """Per-axis spacing of the stored array -> per canonical axis."""
        return tuple(float(spacing[a]) for a in self.axes)

    @property
    def slice_axis(self) -> int:
        return self.axes[0]


def check_direction(direction: np.ndarray, path) -> None:
    """Refuse a direction matrix that is not finite and orthonormal (a header that cannot be trusted)."""
    if not np.isfinite(direction).all():
        raise InputError(path, "direction matrix holds NaN or infinite values")
    if not np.allclose(direction.T @ direction, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
        raise InputError(path, "direction matrix is not orthonormal (a corrupt or sheared header)")


def layout_from_direction(direction: np.ndarray, path=None) -> Layout:
    """The canonical layout of an array whose ITK axis ``c`` runs along ``direction[:, c]`` (LPS).

    Raises :class:`InputError` when two array axes are nearest the same anatomical axis.
    """
    check_direction(direction, path)
    nearest = np.argmax(np.abs(direction), axis=0)  # world axis of each ITK axis
    if len(set(nearest.tolist())) < 3:
        raise InputError(path, "direction matrix is degenerate: two array axes point along the same anatomical "
                               "axis (oblique by 45 degrees?); give --orientation")
    axes, flips = [], []
    for world, sign in CANONICAL:
        itk_axis = int(np.flatnonzero(nearest == world)[0])
        axes.append(2 - itk_axis)
        flips.append(bool(np.sign(direction[world, itk_axis]) != sign))
    cosines = np.abs(direction[nearest, range(3)])
    obliquity = float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))
    return Layout(tuple(axes), tuple(flips), obliquity)


def direction_from_code(code: str, path=None) -> np.ndarray:
    """An orientation code (the direction each ITK axis i, j, k runs towards, e.g. 'RPS') -> direction matrix."""
    code = code.upper()
    worlds = [LETTERS.get(letter) for letter in code]
    if len(code) != 3 or None in worlds or len({w for w, _ in worlds}) != 3:
        raise InputError(path, f"orientation {code!r} is not three of R/L, A/P, S/I (one of each pair), e.g. RPS")
    direction = np.zeros((3, 3))
    for itk_axis, (world, sign) in enumerate(worlds):
        direction[world, itk_axis] = sign
    return direction


def stored_layout(slice_axis: int) -> Layout:
    """The layout that takes ``slice_axis`` as the slices and the other two axes as stored (no orientation)."""
    if slice_axis not in (0, 1, 2):
        raise InputError("--slice-axis", f"{slice_axis} is not an array axis of a 3D image (0, 1 or 2)")
    return Layout((slice_axis, *(a for a in range(3) if a != slice_axis)), (False, False, False))


def volume_layout(volume, slice_axis: int | None = None, orientation: str | None = None) -> Layout:
    """The canonical layout of ``volume``: from its header, or from ``orientation`` (a code replacing the
    header's) or ``slice_axis`` (slices on that numpy axis, in-plane axes as stored) when the user says so."""
    if orientation:
        return layout_from_direction(direction_from_code(orientation, volume.path), volume.path)
    if slice_axis is not None:
        return stored_layout(slice_axis)
    if not volume.oriented:
        raise InputError(volume.path, "header carries no orientation (no qform/sform, or an identity direction); say "
                                      "how the array is laid out with --orientation (e.g. RPS, or LPS if it really is "
                                      "identity) or --slice-axis")
    return layout_from_direction(volume.direction, volume.path)


def direction_of(layout: Layout) -> np.ndarray:
    """A direction matrix (ITK columns, LPS) for which :func:`layout_from_direction` gives ``layout``: the
    geometry of a scan whose header said nothing and whose layout the user gave."""
    direction = np.zeros((3, 3))
    for (world, sign), axis, flip in zip(CANONICAL, layout.axes, layout.flips):
        direction[world, 2 - axis] = -sign if flip else sign
    return direction


def world_direction(volume, layout: Layout) -> np.ndarray:
    """The direction matrix to measure ``volume`` in: its header's, unless the header has none."""
    return volume.direction if volume.oriented else direction_of(layout)
