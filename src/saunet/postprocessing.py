"""Post-processing of a label map on the input's grid: one entry point, :func:`postprocess`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

MIN_COMPONENT_MM3 = 1000.0  # a vertebral body is about 30 000 mm^3; smaller islands are false positives
# a body's lateral end slices smaller than this share of its largest slice lie beyond its end (reports/levels/refine)
END_SLICE_SHARE = 0.2


@dataclass(frozen=True)
class PostprocessingSettings:
    """Islands under ``min_component_mm3`` are removed; of the rest, the ``max_components`` largest are kept
    (0 keeps all; training records the median number of bodies in its masks)."""

    min_component_mm3: float = MIN_COMPONENT_MM3
    max_components: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def label_components(mask: np.ndarray, fully_connected: bool = True) -> np.ndarray:
    """Connected components (26-connectivity in 3D; 6, face to face, if not ``fully_connected``): 0 for background,
    1..N for the components."""
    # SimpleITK rather than scipy.ndimage: it is loaded for the images anyway, and importing scipy.ndimage
    # costs every `saunet segment` process time (reports/speed-ups.md).
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    return sitk.GetArrayFromImage(sitk.ConnectedComponent(image, fully_connected))


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


def postprocess(labels: np.ndarray, spacing: tuple[float, ...], settings: PostprocessingSettings,
                probabilities: np.ndarray | None = None, superior: tuple[int, int] | None = None) -> np.ndarray:
    """Classes 0..K on the input's grid -> the same, cleaned.

    A level model (K > 1 classes, with its ``probabilities`` (K, ...) and the ``superior`` direction: the array
    axis that runs cranio-caudally and +1 or -1 for whether its index grows towards superior) gets
    :func:`assign_levels`: islands removed, then one consecutive run of levels over the bodies from the top down.
    Otherwise islands are removed and the ``max_components`` largest components kept (:func:`clean_mask`); the
    classes of the voxels kept are unchanged.
    """
    if probabilities is not None and probabilities.shape[0] > 1 and superior is not None:
        return assign_levels(labels, probabilities, spacing, settings.min_component_mm3, superior)
    foreground = clean_mask(labels > 0, spacing, settings.min_component_mm3, settings.max_components)
    return np.where(foreground, labels, 0).astype(np.uint8)


def body_regions(labels: np.ndarray, spacing: tuple[float, ...], min_mm3: float, axis: int,
                 fragment_share: float = 0.25, merged_height: float = 1.5) -> np.ndarray:
    """Candidate bodies, numbered 1..N: the connected components of the foreground (islands under ``min_mm3``
    removed), except that a component taller along ``axis`` (cranio-caudal) than ``merged_height`` times the
    median large level region, and holding several large regions of different decoded levels, is split into
    those regions (bodies touching through the discs: a merged column), its small fragments dropped. A region
    is large from ``fragment_share`` of the median region on; a body that took two levels keeps one height and
    stays whole. Fragments then join the body at their height (:func:`joined_fragments`)."""
    components = label_components(clean_mask(labels > 0, spacing, min_mm3))
    regions = level_regions(np.where(components > 0, labels, 0))
    volumes = np.bincount(regions.ravel()) * float(np.prod(spacing))
    volumes[0] = 0.0
    large = volumes >= min_mm3
    if large.any():
        large &= volumes >= fragment_share * np.median(volumes[large])
    large[0] = False
    component_of = np.zeros(len(volumes), np.int64)
    component_of[regions.ravel()] = components.ravel()
    region_height, component_height = extents(regions, axis), extents(components, axis)
    tall = component_height > merged_height * (np.median(region_height[large]) if large.any() else np.inf)
    several = np.bincount(component_of[large], minlength=int(components.max()) + 1) > 1
    split = (tall & several)[components]
    bodies = np.where(split, np.where(large[regions], regions + int(components.max()), 0), components)
    return joined_fragments(renumbered(bodies), axis, fragment_share)


def present_values(labels: np.ndarray) -> np.ndarray:
    """The label values > 0 that occur in ``labels`` (non-negative integers), ascending: a count, not a sort,
    which on a whole scan is several times faster than np.unique."""
    values = np.flatnonzero(np.bincount(labels.ravel().astype(np.int64))) if labels.size else np.zeros(0, np.int64)
    return values[values > 0]


def cut_by_field(labels: np.ndarray, axis: int) -> frozenset[int]:
    """Values of ``labels`` on the first or last plane of the array along ``axis`` (the cranio-caudal one): bodies
    only partly inside the field of view."""
    return frozenset(int(v) for v in present_values(np.take(labels, [0, labels.shape[axis] - 1], axis=axis)))


def renumbered(ids: np.ndarray) -> np.ndarray:
    """``ids`` (0 background) renumbered 1..N in the order of their values."""
    present = np.bincount(ids.ravel()) > 0
    present[0] = False
    lookup = np.zeros(len(present), np.int64)
    lookup[present] = np.arange(1, int(present.sum()) + 1)
    return lookup[ids]


def level_regions(labels: np.ndarray) -> np.ndarray:
    """Connected regions of each label value, numbered 1..N across values: touching regions of different
    values stay apart."""
    regions, count = np.zeros(labels.shape, np.int64), 0
    for value in present_values(labels):
        of_value = label_components(labels == value)
        inside = of_value > 0
        regions[inside] = of_value[inside] + count
        count += int(of_value.max())
    return regions


def axis_coordinates(shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Every voxel's index along ``axis``, as a read-only broadcast view of ``shape``."""
    along = [1] * len(shape)
    along[axis] = -1
    return np.broadcast_to(np.arange(shape[axis]).reshape(along), shape)


def ranges(ids: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest index along ``axis`` of each id 0..max of ``ids`` (an id that does not occur: high < low)."""
    coordinate = axis_coordinates(ids.shape, axis).ravel()
    count = int(ids.max()) + 1
    high, low = np.full(count, -1), np.full(count, ids.shape[axis])
    np.maximum.at(high, ids.ravel(), coordinate)
    np.minimum.at(low, ids.ravel(), coordinate)
    return low, high


def extents(ids: np.ndarray, axis: int) -> np.ndarray:
    """Extent in voxels along ``axis`` of each id 0..max of ``ids`` (0 for ids that do not occur)."""
    low, high = ranges(ids, axis)
    return np.maximum(high - low + 1, 0)


def joined_fragments(bodies: np.ndarray, axis: int, fragment_share: float = 0.25, overlap: float = 0.5) -> np.ndarray:
    """``bodies`` (1..N) with each fragment joined to the body it is a piece of, renumbered 1..M.

    A fragment holds under ``fragment_share`` of a typical body's voxels (the median of those with at least a
    quarter of the largest's). It joins the large body whose cranio-caudal range (along ``axis``) shares the most
    of its own range, if that is at least ``overlap`` of it: a lateral piece of a body lies at that body's
    height, while a body of its own (a T11 cut by the field of view) lies beyond its neighbour's endplates.
    Fragments left over join the largest such fragment whose range holds theirs alike (pieces of a sacrum).
    Counted as bodies of their own, fragments take ranks in the run of levels and shift the names below them.
    """
    sizes = np.bincount(bodies.ravel())
    sizes[0] = 0
    if np.count_nonzero(sizes) < 2:
        return bodies
    typical = np.median(sizes[sizes >= 0.25 * sizes.max()])
    low, high = ranges(bodies, axis)
    target = np.arange(len(sizes))
    fragments = [int(f) for f in np.argsort(-sizes) if 0 < sizes[f] < fragment_share * typical]
    hosts = sizes >= fragment_share * typical
    for wave in (hosts, np.isin(np.arange(len(sizes)), fragments)):
        for fragment in fragments:
            if target[fragment] != fragment:
                continue
            shared = np.minimum(high, high[fragment]) - np.maximum(low, low[fragment]) + 1
            shared = np.where(wave & (target == np.arange(len(sizes))) & (sizes > sizes[fragment]), shared, 0)
            host = int(np.argmax(shared))
            if shared[host] >= overlap * (high[fragment] - low[fragment] + 1):
                target[fragment] = host
    return renumbered(target[bodies])


def assign_levels(labels: np.ndarray, probabilities: np.ndarray, spacing: tuple[float, ...], min_mm3: float,
                  superior: tuple[int, int]) -> np.ndarray:
    """Level-consistent labels: each body gets one level, the levels run 1..K from the most superior body down
    without a gap (unless the bodies' spacing shows a body missing: :func:`level_steps`), and which run is
    chosen from the whole sequence: the offset that maximises the summed level
    probability of the bodies. A body the run would place outside 1..K (a T10 above, the sacrum below) becomes
    background. (K, ...) ``probabilities`` of levels 1..K; returns classes 0..K (uint8).

    A body is a connected region of one decoded level (:func:`body_regions`): neighbouring bodies touch
    through the discs often enough that components of the whole foreground would merge a column of them.
    """
    components = body_regions(labels, spacing, min_mm3, superior[0])
    count = int(components.max())
    if count == 0:
        return np.zeros(labels.shape, np.uint8)
    levels = probabilities.shape[0]
    index = components.ravel()
    votes = np.stack([np.bincount(index, weights=p.ravel(), minlength=count + 1)[1:] for p in probabilities], 1)
    axis, sign = superior
    coordinate = axis_coordinates(labels.shape, axis) * float(sign)
    height = (np.bincount(index, weights=coordinate.ravel(), minlength=count + 1)[1:]
              / np.bincount(index, minlength=count + 1)[1:])
    top_down = np.argsort(-height)  # component indices (0-based) from the most superior body
    ranks = level_steps(height[top_down], float(np.median(extents(components, axis)[1:])))

    def score(offset: int) -> float:
        return sum(votes[c, offset + r] for r, c in zip(ranks, top_down) if 0 <= offset + r < levels)

    offset = max(range(-int(ranks[-1]), levels), key=score)
    level_of = np.zeros(count + 1, np.uint8)
    for r, c in zip(ranks, top_down):
        if 0 <= offset + r < levels:
            level_of[c + 1] = offset + r + 1
    return level_of[components]


def level_steps(heights: np.ndarray, body_extent: float, missed: float = 1.6, same: float = 0.5) -> np.ndarray:
    """Ranks 0, 1, ... of bodies at cranio-caudal ``heights`` (from the top down) in the run of levels: one
    level per body, except that a step over ``missed`` times the median step between bodies skips the levels
    that fit in it (a body the network did not find leaves a gap, not a shifted name below it), and that a
    piece under ``same`` times a body's cranio-caudal extent (``body_extent``) below the topmost piece of the body
    above shares its rank: pieces of one body side by side, each too large for :func:`joined_fragments`, would
    otherwise each take a level and shift every name below them (reports/levels/errors/names.md). Measured from
    that topmost piece, not the piece just above, so that a run of pieces cannot chain two bodies into one."""
    steps = -np.diff(heights)
    apart, top = np.zeros(len(steps), bool), heights[0] if len(heights) else 0.0
    for i, height in enumerate(heights[1:]):
        apart[i] = top - height >= same * body_extent
        top = height if apart[i] else top
    if np.count_nonzero(apart) < 2:
        return np.concatenate([[0], np.cumsum(apart)]).astype(int)
    typical = np.median(steps[apart])
    skips = np.where(steps > missed * typical, np.maximum(np.rint(steps / typical), 1), 1).astype(int)
    return np.concatenate([[0], np.cumsum(np.where(apart, skips, 0))])


def trimmed_lateral_ends(levels: np.ndarray, share: float = END_SLICE_SHARE) -> np.ndarray:
    """(S, H, W) level map, slices first -> the same without each level's outermost slices (from either lateral end
    inward, up to the first slice that holds at least ``share`` of the level's largest slice area)."""
    out = levels.copy()
    for level in present_values(levels):
        area = (levels == level).sum((1, 2))
        occupied, enough = np.flatnonzero(area), share * area.max()
        for end in (occupied, occupied[::-1]):
            for s in end:
                if area[s] >= enough:
                    break
                out[s][levels[s] == level] = 0
    return out
