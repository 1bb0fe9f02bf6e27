"""Measurements on phantoms of known geometry: boxes, wedges and biconcave bodies, at several spacings, array
layouts and tilts, each height within one voxel of the truth."""

import numpy as np
import pytest

from saunet.measurement import INSET, grade_suggestion, measure_levels
from saunet.orientation import direction_from_code

DEPTH, WIDTH = 34.0, 40.0  # antero-posterior and left-right size of the phantom bodies (mm)


def rotation_about_right(degrees: float) -> np.ndarray:
    """World rotation (LPS) about the left-right axis: a body tilted forwards, as in a lordotic spine."""
    t = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


def wedge_height(a, anterior, posterior, middle=None):
    """Height at antero-posterior coordinate ``a`` (mm, 0 the centre, + anterior): linear from the posterior
    to the anterior wall, less a central dip down to ``middle`` (a biconcave body: the endplates sink in their
    middle, between rims a fifth of the depth wide)."""
    share = (a + DEPTH / 2) / DEPTH
    height = posterior + (anterior - posterior) * share
    if middle is not None:
        central = np.abs(a) < 0.3 * DEPTH
        dip = ((anterior + posterior) / 2 - middle) * np.cos(np.pi * a / (0.6 * DEPTH)) ** 2
        height = height - np.where(central, dip, 0.0)
    return height


def phantom(bodies, spacing, code="RPS", tilt=0.0, field_mm=70.0):
    """Label map (numpy k, j, i) of bodies [(value, centre_superior_mm, anterior, posterior, middle)] in a
    scan of ``spacing`` (numpy order) and orientation ``code``, ``field_mm`` wide along every axis, bodies
    tilted by ``tilt`` degrees."""
    shape = tuple(int(np.ceil(field_mm / s)) for s in spacing)
    direction = direction_from_code(code)
    to_world = direction[:, ::-1] * np.asarray(spacing)[None, :]
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    centre = np.array(shape) / 2
    world = (index - centre) @ to_world.T
    body = world @ rotation_about_right(tilt)  # body coordinates: x right-left, y posterior, z superior
    labels = np.zeros(len(index), np.uint8)
    for value, z0, anterior, posterior, middle in bodies:
        a, s, u = -body[:, 1], body[:, 2] - z0, body[:, 0]
        inside = (np.abs(a) <= DEPTH / 2) & (np.abs(u) <= WIDTH / 2)
        inside &= np.abs(s) <= wedge_height(a, anterior, posterior, middle) / 2
        labels[inside] = value
    origin = -centre @ to_world.T
    return labels.reshape(shape), direction, tuple(origin)


def truth(anterior, posterior, middle=None):
    read = {"anterior": DEPTH / 2 - INSET * DEPTH, "middle": 0.0, "posterior": -DEPTH / 2 + INSET * DEPTH}
    return {k: wedge_height(a, anterior, posterior, middle) for k, a in read.items()}


CASES = [  # spacing (numpy order), orientation code (ITK i, j, k; numpy axis 0 is k), tilt
    ((3.0, 0.8, 0.8), "PSR", 0.0),
    ((4.0, 1.25, 1.25), "PSR", 12.0),
    ((1.0, 1.0, 1.0), "RIP", -8.0),
    ((0.6, 0.6, 3.5), "RPS", 20.0),
]


def in_plane_voxel(spacing, code):
    """The larger spacing of the two sagittal in-plane axes: one voxel along a height."""
    slice_axis = 2 - code.upper().replace("L", "R").index("R")
    return max(s for a, s in enumerate(spacing) if a != slice_axis)


@pytest.mark.parametrize("spacing,code,tilt", CASES)
@pytest.mark.parametrize("shape_kind", ["box", "wedge", "biconcave"])
def test_heights_within_one_voxel(spacing, code, tilt, shape_kind):
    heights = {"box": (26.0, 26.0, None), "wedge": (17.0, 27.0, None), "biconcave": (26.0, 26.0, 19.0)}[shape_kind]
    labels, direction, origin = phantom([(5, 0.0, *heights)], spacing, code, tilt)
    (row,) = measure_levels(labels, spacing, direction, origin)
    expected = truth(*heights)
    in_plane = in_plane_voxel(spacing, code)
    for position, value in expected.items():
        measured = getattr(row, f"{position}_height_mm")
        assert abs(measured - value) <= in_plane, (position, measured, value)
    assert row.name == "L3"
    assert row.volume_cm3 == pytest.approx(labels.astype(bool).sum() * np.prod(spacing) / 1000)


def test_ratios_grade_and_discs_between_a_column_of_bodies():
    spacing = (3.0, 0.8, 0.8)  # sagittal slices (R) on numpy axis 0
    bodies = [(4, 36.0, 26, 26, None), (5, 0.0, 10, 30, None), (6, -36.0, 27, 27, None)]  # L3 wedged 46 %
    labels, direction, origin = phantom(bodies, spacing, "PSR", field_mm=150.0)
    rows = {r.name: r for r in measure_levels(labels, spacing, direction, origin)}
    assert list(rows) == ["L2", "L3", "L4"]
    assert rows["L3"].wedge_ratio == pytest.approx(truth(10, 30)["anterior"] / truth(10, 30)["posterior"], abs=0.06)
    assert rows["L3"].grade_suggestion.startswith("severe")
    assert rows["L2"].grade_suggestion == "none" and rows["L4"].grade_suggestion == "none"
    # The disc below L2: body centres 36 mm apart, half heights 13 above and (at each reading) h/2 below.
    for position in ("anterior", "middle", "posterior"):
        gap = 36.0 - 13.0 - truth(10, 30)[position] / 2
        assert abs(getattr(rows["L2"], f"disc_below_{position}_mm") - gap) <= 0.8 * 1.5, position
    assert np.isnan(rows["L4"].disc_below_middle_mm)  # nothing below the last level


def test_same_map_measures_the_same_in_every_stored_layout():
    labels, direction, origin = phantom([(3, 0.0, 20, 26, None)], (2.0, 1.0, 1.0), "PSR", 10.0)
    first = measure_levels(labels, (2.0, 1.0, 1.0), direction, origin)[0]
    flipped = labels[::-1].transpose(2, 0, 1)  # another array layout of the same voxels, with its own header
    # its header: ITK axis c is numpy axis 2 - c; new numpy axes (0, 1, 2) are old (2, reversed 0, 1)
    new_direction = np.stack([direction[:, 1], -direction[:, 2], direction[:, 0]], 1)
    second = measure_levels(flipped, (1.0, 2.0, 1.0), new_direction, (0.0, 0.0, 0.0))[0]
    for column in ("volume_cm3", "anterior_height_mm", "middle_height_mm", "posterior_height_mm"):
        assert getattr(second, column) == pytest.approx(getattr(first, column), abs=1e-6), column


def test_grades_follow_genant_thresholds():
    assert [grade_suggestion(x) for x in (0.1, 0.22, 0.3, 0.5)] == [
        "none", "mild (grade 1)", "moderate (grade 2)", "severe (grade 3)"]


def test_a_body_too_small_to_read_is_not_graded():
    labels = np.zeros((6, 40, 40), np.uint8)
    labels[3, 20, 20] = 5  # one voxel: no frame, no heights
    labels[2:4, 2:4, 2:4] = 6  # eight voxels: heights of a voxel or two, ratios where a height is zero are empty
    rows = {r.name: r for r in measure_levels(labels, (1.0, 1.0, 1.0), np.eye(3))}
    assert rows["L3"].grade_suggestion == "not measured" and np.isnan(rows["L3"].wedge_ratio)
    assert rows["L4"].volume_cm3 == pytest.approx(0.008)


@pytest.mark.parametrize("code", ["PSR", "RIP"])
def test_a_body_cut_by_the_field_of_view_is_not_graded(code):
    spacing = (1.0, 1.0, 1.0)
    bodies = [(4, 60.0, 26, 26, None), (5, 24.0, 26, 26, None), (6, -12.0, 26, 26, None)]  # L2 half outside
    labels, direction, origin = phantom(bodies, spacing, code, field_mm=130.0)
    rows = {r.name: r for r in measure_levels(labels, spacing, direction, origin)}
    assert rows["L2"].cut_by_field and rows["L2"].grade_suggestion.startswith("not graded: cut")
    assert np.isnan(rows["L2"].posterior_height_mm)  # not a 13 mm body with 50 % height loss
    assert not rows["L3"].cut_by_field and rows["L3"].grade_suggestion == "none"
    assert abs(rows["L3"].posterior_height_mm - 26.0) <= 1.0
