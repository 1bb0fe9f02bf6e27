"""The outline refiner: where it may redraw, how redrawn voxels are named, other pixel sizes, training and export."""

import numpy as np
import pytest

from saunet.errors import InputError
from saunet.refinement import RADIUS, body_logits, in_plane_dilation, nearest_levels, refine, widened


class BrightIsBody:
    """A fake refiner: a pixel is body where the slice is bright; records the shapes it was given."""

    def __init__(self):
        self.shapes = []

    def __call__(self, slices):
        self.shapes.append(slices.shape)
        return np.where(slices > 0.5, 10.0, -10.0).astype(np.float32)


def phantom(shape=(3, 64, 64)):
    """Two stacked bright boxes (the true bodies), a bright blob far from them, and a coarse level map whose bodies
    are the boxes drawn 2 pixels short at their anterior and superior sides."""
    image = np.zeros(shape, np.float32)
    image[:, 10:24, 20:40] = 1.0
    image[:, 30:44, 20:40] = 1.0
    image[:, 50:56, 55:60] = 1.0  # beyond the refiner's reach of any coarse body
    coarse = np.zeros(shape, np.uint8)
    coarse[:2, 10:22, 22:40] = 4
    coarse[:2, 30:42, 22:40] = 3
    return image, coarse


def test_the_refiner_redraws_outlines_only_near_the_coarse_bodies_and_keeps_their_names():
    image, coarse = phantom()
    refined = refine(BrightIsBody(), coarse, image, (1.0, 1.0))
    truth = np.zeros_like(coarse)
    truth[:2, 10:24, 20:40] = 4
    truth[:2, 30:44, 20:40] = 3
    assert np.array_equal(refined, truth)  # the blob and the slice without coarse bodies stay background


def test_an_island_the_refiner_draws_near_a_body_but_apart_from_it_is_dropped():
    image, coarse = phantom()
    image[:, 12:16, 42:44] = 1.0  # within the refiner's reach of the upper body, two dark columns away from it
    refined = refine(BrightIsBody(), coarse, image, (1.0, 1.0))
    assert not refined[:, 12:16, 42:44].any()
    assert (refined[:2, 10:24, 20:40] == 4).all()  # the body it moved stays whole


def test_a_bodys_small_lateral_end_slices_are_trimmed_and_its_inner_slices_kept():
    from saunet.postprocessing import trimmed_lateral_ends

    levels = np.zeros((9, 20, 20), np.uint8)
    levels[2:8, 2:12, 2:12] = 7  # 100 pixels a slice
    levels[0:2, 5:8, 5:8] = 7  # 9 pixels: beyond the body's end on one side
    levels[8, 4:8, 4:9] = 7  # 20 pixels, a fifth of the largest slice: kept
    levels[4, 2:12, 2:12] = 0
    levels[4, 5:8, 5:8] = 7  # a small slice inside the body: kept
    levels[0:9, 14:18, 14:18] = 3  # another level, every slice alike: untouched
    trimmed = trimmed_lateral_ends(levels)
    assert not (trimmed[0:2] == 7).any()
    assert np.array_equal(trimmed[2:], levels[2:])
    assert ((trimmed == 3) == (levels == 3)).all()


def test_the_refiner_trims_the_lateral_end_slices_it_redraws():
    image, coarse = phantom((6, 64, 64))
    coarse[2:5] = coarse[1]
    coarse[5, 14:16, 30:32] = 4  # a sliver of the upper body beyond its end
    image[5] = 0
    image[5, 14:16, 30:32] = 1.0
    refined = refine(BrightIsBody(), coarse, image, (1.0, 1.0))
    assert not refined[5].any() and (refined[:5, 10:24, 20:40] == 4).all()


def test_a_redrawn_voxel_takes_the_name_of_the_nearest_coarse_body_in_its_slice():
    levels = np.zeros((2, 9, 9), np.uint8)
    levels[0, 1, 1], levels[0, 7, 7] = 2, 5
    body = np.zeros(levels.shape, bool)
    body[:, 2, 2] = body[:, 6, 6] = True
    named = nearest_levels(levels, body)
    assert named[0, 2, 2] == 2 and named[0, 6, 6] == 5
    assert not named[1].any()  # a slice the level map leaves empty


def test_a_voxel_as_near_two_bodies_takes_the_lower_level_never_a_neighbouring_slices_body_nor_a_far_one():
    levels = np.zeros((3, 9, 9), np.uint8)
    levels[0, 1, 4], levels[0, 7, 4] = 3, 4  # (0, 4, 4) lies three pixels from each
    levels[1, 4, 5] = 6  # right beside (2, 4, 4), but one slice over
    levels[2, 1, 2] = 2
    body = np.zeros(levels.shape, bool)
    body[:, 4, 4] = body[2, 8, 8] = True  # (2, 8, 8) lies farther than RADIUS from any body
    named = nearest_levels(levels, body)
    assert named[0, 4, 4] == 3 and named[2, 4, 4] == 2 and named[1, 4, 4] == 6 and named[2, 8, 8] == 0


def test_the_in_plane_dilation_is_a_disc_within_each_slice():
    mask = np.zeros((3, 15, 15), bool)
    mask[1, 7, 7] = True
    grown = in_plane_dilation(mask, 3)
    y, x = np.mgrid[-7:8, -7:8]
    assert np.array_equal(grown[1], x * x + y * y <= 9) and not grown[0].any() and not grown[2].any()


def test_other_pixel_sizes_are_seen_at_one_millimetre_and_mapped_back():
    image, coarse = phantom((2, 128, 128))
    refiner = BrightIsBody()
    logits = body_logits(refiner, image, coarse > 0, (0.5, 0.5))
    assert all(n % 16 == 0 for n in refiner.shapes[0][2:]) and refiner.shapes[0][2] < 60  # about half the crop
    assert logits[0, 15, 30] > 2 and logits[0, 27, 30] < -2  # a body, and the gap between the two


def test_the_widened_box_leaves_room_for_the_redrawn_outlines_inside_the_array():
    box = widened((slice(1, 3), slice(2, 10), slice(50, 60)), (5, 20, 62))
    assert box == (slice(1, 3), slice(0, 10 + RADIUS), slice(50 - RADIUS, 62))


@pytest.mark.parametrize("annotated", [None, (3, 4, 5)])
def test_training_counts_only_pixels_near_annotated_bodies_and_nothing_above_a_partial_annotation(tmp_path, annotated):
    from dataclasses import replace

    from saunet.datasets import list_cases
    from saunet.experiments.phantoms import write_cohort
    from saunet.refiner_training import canonical_case

    write_cohort(tmp_path, 1, seed=3, shape=(7, 48, 48))
    case = replace(list_cases(tmp_path)[0], annotated=annotated)
    _, body, known = canonical_case(case)
    assert body.any() and known[body].all()
    assert not (known & ~in_plane_dilation(body, RADIUS)).any()  # nothing far from a body is taught
    rows = np.arange(body.shape[1])[None, :, None]
    top = np.where(body.any(2), np.arange(body.shape[1])[None], -1).max(1)[:, None, None]
    above = np.broadcast_to(rows > top + 2, body.shape)
    assert known[above].any() == (annotated is None)


def test_the_balanced_refiner_draws_each_data_set_as_often_whatever_its_number_of_scans():
    from saunet.refiner_training import batches

    body = np.zeros((1, 8, 8), bool)
    body[0, 3:5, 3:5] = True
    cases = [(np.full((1, 8, 8), float(i == 3), np.float32), body, body) for i in range(4)]  # the small set's is bright

    def small_share(data_sets):
        stream = batches(cases, np.random.default_rng(0), data_sets)
        return np.mean([next(stream)[0][:, 0, 0, 0, 0].numpy() for _ in range(40)])

    assert abs(small_share(["big", "big", "big", "small"]) - 0.5) < 0.05
    assert abs(small_share(None) - 0.25) < 0.05  # the default: each scan equally often


@pytest.mark.parametrize("widths", [None, (4, 4, 8, 8, 16, 4)])
def test_a_trained_refiner_of_any_width_exports_to_onnx_and_runs_on_any_slice_size(tmp_path, widths):
    import torch

    from saunet.datasets import list_cases
    from saunet.experiments.phantoms import write_cohort
    from saunet.refinement import OutlineRefiner
    from saunet.refiner_training import FEATURES, train_refiner

    write_cohort(tmp_path / "data", 2, seed=4, shape=(7, 48, 48))
    width = {} if widths is None else {"features": widths}
    path = train_refiner(list_cases(tmp_path / "data"), 2, tmp_path / "run", progress=False, **width)
    assert torch.load(tmp_path / "run" / "refiner.pt")["features"] == (widths or FEATURES)
    logits = OutlineRefiner(path)(np.zeros((3, 1, 48, 80), np.float32))
    assert logits.shape == (3, 1, 48, 80) and np.isfinite(logits).all()
    assert train_refiner(list_cases(tmp_path / "data"), 2, tmp_path / "run", progress=False, **width) == path  # resumes
    with pytest.raises(InputError, match="features"):  # a run of another width does not resume this one
        train_refiner(list_cases(tmp_path / "data"), 3, tmp_path / "run", progress=False, features=(2, 2, 4, 4, 8, 2))


def test_a_refiner_trains_on_patches_of_the_side_and_number_asked_and_resumes_only_with_them(tmp_path, monkeypatch):
    import torch

    import saunet.refiner_training as refiner_training
    from saunet.datasets import list_cases
    from saunet.experiments.phantoms import write_cohort

    seen = []
    monkeypatch.setattr(refiner_training, "masked_loss", lambda logits, *rest: seen.append(logits.shape) or logits.mean())
    write_cohort(tmp_path / "data", 1, seed=4, shape=(7, 48, 48))
    cases = list_cases(tmp_path / "data")
    refiner_training.train_refiner(cases, 2, tmp_path / "run", progress=False, size=32, batch=5)
    assert seen == [(5, 1, 32, 32)] * 2
    saved = torch.load(tmp_path / "run" / "refiner.pt")
    assert (saved["patch"], saved["batch"]) == (32, 5)
    with pytest.raises(InputError, match="5 patches of 32"):  # a run of other patches does not resume this one
        refiner_training.train_refiner(cases, 3, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="multiple of 16"):
        refiner_training.train_refiner(cases, 3, tmp_path / "other", progress=False, size=40)


@pytest.mark.parametrize("share", [0.0, 0.3])
def test_a_refiner_trained_with_contrast_curves_sees_its_patches_through_them(tmp_path, monkeypatch, share):
    import torch

    import saunet.refiner_training as refiner_training
    from saunet.datasets import list_cases
    from saunet.experiments.phantoms import write_cohort

    shares = []
    monkeypatch.setattr(refiner_training, "remap_contrast", lambda images, rng, s: shares.append(s) or -images)
    write_cohort(tmp_path / "data", 1, seed=4, shape=(7, 48, 48))
    refiner_training.train_refiner(list_cases(tmp_path / "data"), 2, tmp_path / "run", progress=False,
                                   contrast_curves=share)
    assert shares == ([share] * 2 if share else [])  # every batch, or none
    assert torch.load(tmp_path / "run" / "refiner.pt")["contrast_curves"] == share


def test_the_shipped_segmenter_redraws_outlines_near_its_level_map_and_nothing_else(lumbar):
    from saunet.evaluation import overlap_metrics
    from saunet.imageio import read_volume
    from saunet.inference import Segmenter

    scan = sorted((lumbar / "imagesTr").glob("*.nii.gz"))[0]
    volume, reference = read_volume(scan), read_volume(lumbar / "labelsTr" / scan.name.replace("_0000", ""))
    result = Segmenter().segment(volume)
    plain = Segmenter(refine=False).segment(volume)
    assert result.refiner and plain.refiner is None and plain.unrefined_labels is None
    assert np.array_equal(result.unrefined_labels, plain.labels)  # the refiner is the only change
    before, after = (result.layout.to_canonical(a) for a in (result.unrefined_labels, result.labels))
    changed = before != after
    assert changed.any() and not (changed & ~in_plane_dilation(before > 0, RADIUS)).any()
    assert set(np.unique(after)) == set(np.unique(before))  # no level gained or lost
    dice = [overlap_metrics(labels > 0, reference.array > 0)["dice"] for labels in (plain.labels, result.labels)]
    print("Dice before and after the refiner (a training scan of both):", dice)
    assert dice[1] > dice[0]
