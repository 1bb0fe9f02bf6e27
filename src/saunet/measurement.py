"""Per-level measurements of a level map: volumes, body heights in each body's own frame, wedge and
biconcavity ratios, a Genant-style grade suggestion and disc heights. Definitions: docs/measurements.md.

Geometry is in world millimetres (the header's spacing and direction matrix), so a map measures the same in
any array layout and oblique scans are measured on their true axes. A body's frame comes from its own voxels:
the principal axes of their positions, named cranio-caudal, antero-posterior and left-right by the world axis
each lies nearest (:func:`body_frame`). Heights are read in the body's mid-sagittal plane, sampled finely (``STEP_MM``) with
nearest-voxel lookups, so a voxel counts with its whole extent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from saunet.labels import LEVELS
from saunet.orientation import layout_from_direction
from saunet.postprocessing import cut_by_field, present_values

STEP_MM = 0.2  # sampling step in the mid-sagittal plane
INSET = 0.20  # anterior and posterior heights are read this share of the body's depth inside its walls, clear of rounded corners
BAND = 0.05  # each height is the median of the columns within this share of the depth either side
LR_OFFSETS_MM = (-1.0, 0.0, 1.0)  # and of the planes this far either side of the mid-sagittal one
# Genant's semi-quantitative grades by height loss (Genant et al., J Bone Miner Res 1993).
GRADES = ((0.40, "severe (grade 3)"), (0.25, "moderate (grade 2)"), (0.20, "mild (grade 1)"))
SUPERIOR, RIGHT = np.array([0.0, 0.0, 1.0]), np.array([-1.0, 0.0, 0.0])  # LPS world
TILT_SEARCH = 25.0  # degrees either side of the spine's course searched for a body's own axis
POSITIONS = ("anterior", "middle", "posterior")


@dataclass
class Frame:
    """A body's (or a disc's) own axes in world mm: origin and unit vectors towards superior, anterior, right."""

    origin: np.ndarray
    superior: np.ndarray
    anterior: np.ndarray
    right: np.ndarray


@dataclass
class LevelMeasures:
    """One level's row: the names are the CSV's column names, units in their suffixes."""

    level: int
    name: str
    volume_cm3: float
    anterior_height_mm: float
    middle_height_mm: float
    posterior_height_mm: float
    wedge_ratio: float
    biconcavity_ratio: float
    neighbour_height_loss_pct: float
    deformity_pct: float
    grade_suggestion: str
    cut_by_field: bool = False
    disc_below_anterior_mm: float = float("nan")
    disc_below_middle_mm: float = float("nan")
    disc_below_posterior_mm: float = float("nan")
    centroid_x_mm: float = float("nan")
    centroid_y_mm: float = float("nan")
    centroid_z_mm: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


COLUMNS = list(LevelMeasures.__dataclass_fields__)


class WorldGrid:
    """World positions (mm, LPS) of a label map's voxels and the way back, for an array in numpy (k, j, i) order."""

    def __init__(self, shape: tuple[int, ...], spacing: tuple[float, ...], direction: np.ndarray,
                 origin: tuple[float, ...] = (0.0, 0.0, 0.0)):
        self.shape = shape
        # numpy axis a is ITK axis 2 - a: column a of ``to_world`` is the world step of one voxel along numpy axis a
        self.to_world = np.asarray(direction, float)[:, ::-1] * np.asarray(spacing, float)[None, :]
        self.to_index = np.linalg.inv(self.to_world)
        self.origin = np.asarray(origin, float)

    def positions(self, mask: np.ndarray) -> np.ndarray:
        """World positions (N, 3) of the voxel centres in ``mask``."""
        return np.argwhere(mask) @ self.to_world.T + self.origin

    def lookup(self, mask: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``mask`` at world ``points`` (..., 3), nearest voxel; False outside the array."""
        index = np.rint((points - self.origin) @ self.to_index.T).astype(np.int64)
        inside = np.all((index >= 0) & (index < np.array(self.shape)), axis=-1)
        found = np.zeros(points.shape[:-1], bool)
        found[inside] = mask[tuple(index[inside].T)]
        return found


def body_frame(points: np.ndarray, spine: np.ndarray | None = None) -> Frame:
    """A body's own axes from its voxel positions: left-right is the principal axis nearest the scanner's;
    in the sagittal plane across it, the cranio-caudal axis is the direction along which the body is shortest,
    endplate to endplate (1st to 99th percentile of the positions), as the sides of the smallest bounding
    rectangle: principal axes alone tilt with a body's rounded corners and posterior wall when its depth and
    height are alike. It is searched within ``TILT_SEARCH`` degrees of ``spine`` (the direction from the body
    below to the body above, when there are neighbours; else the scanner's superior), so a body that merged
    with part of its disc cannot turn on its side."""
    centre = points.mean(0)
    offsets = points - centre
    _, vectors = np.linalg.eigh(np.cov(offsets.T))
    right = max(vectors.T, key=lambda v: abs(v @ RIGHT))
    right = right * np.sign(right @ RIGHT)
    prior = SUPERIOR if spine is None else spine
    upward = prior - (prior @ right) * right
    upward /= np.linalg.norm(upward)
    upward *= np.sign(upward @ SUPERIOR) or 1.0
    forward = np.cross(upward, right)  # anterior
    angles = np.radians(np.arange(-TILT_SEARCH, TILT_SEARCH + 0.25, 0.5))
    candidates = np.cos(angles)[:, None] * upward + np.sin(angles)[:, None] * forward  # (n, 3)
    low, high = np.percentile(offsets @ candidates.T, (1, 99), axis=0)
    superior = candidates[int(np.argmin(high - low))]
    return Frame(centre, superior, np.cross(superior, right), right)


def spine_directions(centroids: dict[int, np.ndarray]) -> dict[int, np.ndarray | None]:
    """Per level, the unit direction from the next level below to the next level above (one side at the ends;
    None for a level alone): the local course of the spine."""
    levels = sorted(centroids)
    directions = {}
    for i, level in enumerate(levels):
        above, below = centroids[levels[max(i - 1, 0)]], centroids[levels[min(i + 1, len(levels) - 1)]]
        step = above - below
        directions[level] = step / np.linalg.norm(step) if np.linalg.norm(step) > 0 else None
    return directions


def mean_frame(upper: Frame, lower: Frame) -> Frame:
    """A disc's frame: half-way between two bodies, their axes averaged (and made orthonormal again)."""
    superior = upper.superior + lower.superior
    superior /= np.linalg.norm(superior)
    anterior = upper.anterior + lower.anterior
    anterior -= (anterior @ superior) * superior
    anterior /= np.linalg.norm(anterior)
    return Frame((upper.origin + lower.origin) / 2, superior, anterior, np.cross(anterior, superior))


def plane_samples(frame: Frame, half_ap: float, half_cc: float, lr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points (A, C, 3) on a grid of the frame's sagittal plane ``lr`` mm to the right; and the
    antero-posterior (A,) and cranio-caudal (C,) coordinates of its rows and columns."""
    ap = np.arange(-half_ap, half_ap + STEP_MM / 2, STEP_MM)
    cc = np.arange(-half_cc, half_cc + STEP_MM / 2, STEP_MM)
    points = (frame.origin + lr * frame.right + ap[:, None, None] * frame.anterior
              + cc[None, :, None] * frame.superior)
    return points, ap, cc


def reading_positions(front: float, back: float) -> dict[str, float]:
    """Antero-posterior coordinates of the anterior, middle and posterior readings between the walls."""
    inset = INSET * (front - back)
    return {"anterior": front - inset, "middle": (front + back) / 2, "posterior": back + inset}


def band_median(values: np.ndarray, ap: np.ndarray, position: float, depth: float) -> float:
    """Median of per-column ``values`` (..., A) over the columns within ``BAND`` of the depth of ``position``."""
    near = np.abs(ap - position) <= max(BAND * depth, STEP_MM)
    return float(np.median(values[..., near]))


def body_heights(grid: WorldGrid, mask: np.ndarray, frame: Frame, reach: float) -> dict[str, float]:
    """Anterior, middle and posterior height (mm) of the body ``mask`` along its cranio-caudal axis."""
    planes = [grid.lookup(mask, plane_samples(frame, reach, reach, lr)[0]) for lr in LR_OFFSETS_MM]
    _, ap, _ = plane_samples(frame, reach, reach, 0.0)
    mid = planes[LR_OFFSETS_MM.index(0.0)]
    occupied = ap[mid.any(1)]
    if occupied.size == 0:
        return {p: float("nan") for p in POSITIONS}
    front, back = occupied.max(), occupied.min()
    heights = np.stack([plane.sum(1) * STEP_MM for plane in planes])  # (planes, A)
    return {name: band_median(heights, ap, at, front - back)
            for name, at in reading_positions(front, back).items()}


def disc_heights(grid: WorldGrid, upper: np.ndarray, lower: np.ndarray, frame: Frame, reach: float) -> dict[str, float]:
    """Anterior, middle and posterior height (mm) of the gap between two bodies along the disc frame's
    cranio-caudal axis: the upper body's lowest point minus the lower body's highest, per column."""
    points, ap, cc = plane_samples(frame, reach, 2 * reach, 0.0)
    above, below = grid.lookup(upper, points), grid.lookup(lower, points)
    shared = above.any(1) & below.any(1)
    if not shared.any():
        return {p: float("nan") for p in POSITIONS}
    bottom = np.where(above, cc[None, :], np.inf).min(1)
    top = np.where(below, cc[None, :], -np.inf).max(1)
    gap = np.where(shared, np.maximum(bottom - top, 0.0), np.nan)
    front, back = ap[shared].max(), ap[shared].min()
    return {name: float(np.nanmedian(gap[np.abs(ap - at) <= max(BAND * (front - back), STEP_MM)]))
            for name, at in reading_positions(front, back).items()}


CUT_GRADE = "not graded: cut by the field of view"


def grade_suggestion(deformity: float) -> str:
    """Genant-style grade for a height loss (share, 0..1): a suggestion, never a diagnosis."""
    if not np.isfinite(deformity):
        return "not measured"
    return next((grade for limit, grade in GRADES if deformity > limit), "none")


def ratio(a: float, b: float) -> float:
    """a / b, NaN where b is not a positive number (a body too small or irregular to read a height from)."""
    return a / b if np.isfinite(b) and b > 0 else float("nan")


def neighbour_reference(posterior: dict[int, float], level: int) -> float:
    """Mean posterior height of the nearest measured levels above and below ``level`` (NaN if none)."""
    near = [posterior[v] for v in (max((v for v in posterior if v < level), default=None),
                                    min((v for v in posterior if v > level), default=None))
            if v is not None and np.isfinite(posterior[v])]
    return float(np.mean(near)) if near else float("nan")


def measure_levels(labels: np.ndarray, spacing: tuple[float, ...], direction: np.ndarray,
                   origin: tuple[float, ...] = (0.0, 0.0, 0.0), names: dict[int, str] | None = None) -> list[LevelMeasures]:
    """One row per level value present in ``labels`` (numpy (k, j, i) order, the header's ``spacing``,
    ``direction`` and ``origin``), from the most superior level down; discs between consecutive values. A level
    on the cranio-caudal edge of the field of view is only partly imaged: its heights are not read (NaN) and it is
    not graded."""
    names = names or LEVELS
    grid = WorldGrid(labels.shape, spacing, direction, origin)
    values = [int(v) for v in present_values(labels)]
    cut = cut_by_field(labels, layout_from_direction(np.asarray(direction, float)).axes[1])
    frames, heights, volumes, reach = {}, {}, {}, {}
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    points = {value: grid.positions(labels == value) for value in values}
    spine = spine_directions({v: p.mean(0) for v, p in points.items() if len(p)})
    for value in values:
        mask = labels == value
        frames[value] = body_frame(points[value], spine.get(value)) if len(points[value]) > 3 else None
        volumes[value] = mask.sum() * voxel_cm3
        reach[value] = float(np.linalg.norm(points[value].max(0) - points[value].min(0))) / 2 + 2.0
        heights[value] = (body_heights(grid, mask, frames[value], reach[value])
                          if frames[value] is not None and value not in cut else {p: float("nan") for p in POSITIONS})
    posterior = {v: heights[v]["posterior"] for v in values}
    rows = []
    for value in values:
        h = heights[value]
        reference = neighbour_reference(posterior, value)
        smallest = min(h.values())
        losses = [1 - ratio(h["anterior"], h["posterior"]), 1 - ratio(h["middle"], h["posterior"]),
                  1 - ratio(h["posterior"], reference)]
        deformity = max(0.0, *(x for x in losses if np.isfinite(x))) if ratio(1.0, h["posterior"]) > 0 else float("nan")
        centroid = frames[value].origin if frames[value] is not None else np.full(3, np.nan)
        rows.append(LevelMeasures(
            value, names.get(value, f"label {value}"), volumes[value], h["anterior"], h["middle"], h["posterior"],
            ratio(h["anterior"], h["posterior"]), ratio(h["middle"], h["posterior"]), 100 * (1 - ratio(smallest, reference)),
            100 * deformity, CUT_GRADE if value in cut else grade_suggestion(deformity), value in cut,
            centroid_x_mm=centroid[0], centroid_y_mm=centroid[1], centroid_z_mm=centroid[2]))
    for row, lower in zip(rows, rows[1:]):
        if lower.level == row.level + 1 and frames[row.level] is not None and frames[lower.level] is not None:
            disc = disc_heights(grid, labels == row.level, labels == lower.level,
                                mean_frame(frames[row.level], frames[lower.level]),
                                max(reach[row.level], reach[lower.level]))
            row.disc_below_anterior_mm, row.disc_below_middle_mm, row.disc_below_posterior_mm = (
                disc["anterior"], disc["middle"], disc["posterior"])
    return rows
