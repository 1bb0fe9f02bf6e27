import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
)
from tests.helpers import write_image

from saunet.evaluation import case_metrics, overlap_metrics, surface_metrics
from saunet.imageio import read_volume


def test_hand_computed_overlap():
    ref = np.zeros((1, 4, 4), bool)
    ref[0, :2, :2] = True  # 4 voxels
    pred = np.zeros_like(ref)
    pred[0, :2, :3] = True  # 6 voxels, 4 of them correct
    m = overlap_metrics(pred, ref)
    assert m["dice"] == pytest.approx(2 * 4 / 10)
    assert m["jaccard"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(4 / 6)
    assert m["recall"] == pytest.approx(1.0)


def test_hand_computed_distances_use_spacing():
    ref = np.zeros((1, 1, 10), bool)
    ref[0, 0, 2] = True
    pred = np.zeros_like(ref)
    pred[0, 0, 2] = True
    pred[0, 0, 7] = True  # an island 5 voxels away
    m = surface_metrics(pred, ref, spacing=(1.0, 1.0, 2.0))
    assert m["hd"] == pytest.approx(10.0)  # 5 voxels of 2 mm
    assert m["assd"] == pytest.approx(10.0 / 3)  # distances 0, 10 (pred->ref) and 0 (ref->pred)


def test_empty_conventions():
    empty, full = np.zeros((2, 3, 3), bool), np.ones((2, 3, 3), bool)
    both = case_metrics(empty, empty, (1, 1, 1))
    assert both == {"dice": 1.0, "jaccard": 1.0, "precision": 1.0, "recall": 1.0, "hd": 0.0, "hd95": 0.0, "assd": 0.0}
    missed = case_metrics(empty, full, (1, 1, 1))
    assert missed["dice"] == 0 and missed["recall"] == 0 and missed["precision"] == 0 and math.isinf(missed["hd"])
    spurious = case_metrics(full, empty, (1, 1, 1))
    assert spurious["dice"] == 0 and spurious["precision"] == 0 and math.isinf(spurious["hd95"])


def monai_metrics(pred, ref, spacing):
    p = torch.from_numpy(pred[None, None].astype(np.float32))
    r = torch.from_numpy(ref[None, None].astype(np.float32))
    return {
        "dice": compute_dice(p, r).item(),
        "jaccard": compute_iou(p, r).item(),
        "hd": compute_hausdorff_distance(p, r, spacing=spacing).item(),
        "hd95": compute_hausdorff_distance(p, r, percentile=95, spacing=spacing).item(),
        "assd": compute_average_surface_distance(p, r, symmetric=True, spacing=spacing).item(),
    }


def assert_agrees_with_monai(pred, ref, spacing):
    ours, theirs = case_metrics(pred, ref, spacing), monai_metrics(pred, ref, spacing)
    for m in ("dice", "jaccard"):
        assert ours[m] == pytest.approx(theirs[m], abs=1e-4), m
    for m in ("hd", "hd95", "assd"):
        assert ours[m] == pytest.approx(theirs[m], abs=0.5), m


@pytest.mark.parametrize("seed", range(4))
def test_random_masks_agree_with_monai(seed):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    ref = ndimage.gaussian_filter(rng.random((12, 30, 26)), 2) > 0.5
    pred = ndimage.binary_dilation(ref, iterations=1) ^ (rng.random(ref.shape) > 0.97)
    assert ref.any() and pred.any()
    assert_agrees_with_monai(pred, ref, spacing=tuple(rng.uniform(0.5, 3.0, 3)))


def test_real_masks_agree_with_monai(lumbar):
    from scipy import ndimage

    label = read_volume(lumbar / "labelsTr" / "lumbar_04.nii.gz")
    ref = label.array > 0
    pred = ndimage.binary_erosion(ref, iterations=1)
    pred[5:8, 10:14, 10:14] = True  # a far-away false positive, as a per-slice network makes
    assert_agrees_with_monai(pred, ref, label.spacing)


def test_evaluate_command_pairs_nnunet_names_and_writes_reports(tmp_path):
    ref = np.zeros((6, 20, 20), np.uint8)
    ref[1:5, 5:15, 5:15] = 1
    pred = ref.copy()
    pred[1:5, 5:15, 14] = 0
    write_image(ref, tmp_path / "ref" / "case_a.nii.gz")
    write_image(pred, tmp_path / "pred" / "case_a_0000.nii.gz")
    write_image(ref, tmp_path / "ref" / "case_b.nii.gz")
    write_image(ref, tmp_path / "pred" / "case_b.nii.gz")
    out = subprocess.run([sys.executable, "-m", "saunet.cli", "evaluate", "--pred", tmp_path / "pred", "--ref",
                          tmp_path / "ref", "--csv", tmp_path / "m.csv", "--json", tmp_path / "m.json",
                          "--markdown", tmp_path / "m.md"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(open(tmp_path / "m.csv", encoding="utf-8")))
    assert list(rows[0]) == ["case", "dice", "jaccard", "precision", "recall", "hd", "hd95", "assd"]
    assert [r["case"] for r in rows] == ["case_a", "case_b"]
    assert float(rows[0]["dice"]) == pytest.approx(2 * 360 / 760, abs=1e-5)
    assert float(rows[1]["dice"]) == 1.0
    summary = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["summary"]
    assert summary["dice"]["mean"] == pytest.approx((2 * 360 / 760 + 1) / 2, abs=1e-5)
    assert "± " in (tmp_path / "m.md").read_text(encoding="utf-8")


def test_body_wise_scores_ignore_unannotated_levels_and_name_levels():
    from saunet.evaluation import body_metrics

    ref = np.zeros((4, 40, 10), np.uint8)
    ref[:, 2:8] = 3  # L1
    ref[:, 12:18] = 4  # L2
    ref[:, 22:28] = 5  # L3: missed by the prediction
    pred = np.zeros_like(ref)
    pred[:, 2:8] = 3
    pred[:, 12:16] = 5  # found (Dice 0.8) but named L3
    pred[:, 32:38] = 2  # a body at T12, which this reference leaves unannotated: not counted
    scores = body_metrics(pred, ref)
    assert scores["bodies"] == 3
    assert scores["body_dice"] == pytest.approx((1.0 + 0.8 + 0.0) / 3)
    assert scores["bodies_found"] == pytest.approx(2 / 3) and scores["bodies_named"] == pytest.approx(1 / 3)


def test_level_map_scores_take_the_references_bodies_from_the_level_table_only():
    from saunet.evaluation import level_map_metrics
    from saunet.labels import LabelMap

    label = np.zeros((4, 40, 10), np.uint8)
    label[:, 2:8] = 6  # L4
    label[:, 12:18] = 7  # L5
    label[:, 22:28] = 9  # a sacrum-like value outside the level table: not a body of the reference
    pred = np.where(label == 9, 0, label).astype(np.uint8)
    scores = level_map_metrics(pred, label, (1.0, 1.0, 1.0))
    assert scores["dice"] == pytest.approx(1.0) and scores["body_dice"] == pytest.approx(1.0)
    assert scores["hd"] == pytest.approx(0.0) and scores["bodies"] == 2
    only_l5 = level_map_metrics(pred, label, (1.0, 1.0, 1.0), LabelMap((7,)))  # another model's classes
    assert only_l5["dice"] == pytest.approx(2 * 24 / (48 + 24)) and only_l5["bodies"] == 1


def test_touching_bodies_of_different_levels_are_scored_apart():
    from saunet.evaluation import body_metrics

    ref = np.zeros((3, 20, 6), np.uint8)
    ref[:, 2:9], ref[:, 11:18] = 3, 4
    pred = np.zeros_like(ref)
    pred[:, 2:10], pred[:, 10:18] = 3, 4  # the two bodies touch, each with its own level
    assert body_metrics(pred, ref)["body_dice"] > 0.9
    assert body_metrics(pred > 0, ref)["body_dice"] < 0.7  # one binary component spans both


def test_a_neighbour_grazing_a_body_counts_for_its_own_body_only():
    from saunet.evaluation import body_metrics

    ref = np.zeros((4, 30, 8), np.uint8)
    ref[:, 2:12], ref[:, 14:24] = 3, 4
    pred = ref.copy()
    pred[:, 12:14] = 4
    pred[0, 11, 0] = 4  # predicted L2 reaches one voxel into L1 across the disc
    scores = body_metrics(pred, ref)
    assert scores["body_dice"] > 0.9  # L1 is not scored against the whole predicted L2


def test_evaluate_leaves_out_the_references_labels_that_are_not_vertebral_bodies(tmp_path):
    ref = np.zeros((4, 40, 10), np.uint8)
    ref[:, 2:8] = 6  # L4
    ref[:, 12:18] = 7  # L5
    ref[:, 22:30] = 8  # the sacrum, which a user's reference may label and the prediction leaves out
    ref[:, 9:11] = 201  # a disc
    pred = np.where(ref <= 7, ref, 0).astype(np.uint8)
    write_image(ref, tmp_path / "ref" / "case.nii.gz")
    write_image(pred, tmp_path / "pred" / "case.nii.gz")
    command = [sys.executable, "-m", "saunet.cli", "evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref",
               "--per-body"]
    every = subprocess.run([*command, "--csv", tmp_path / "every.csv"], capture_output=True, text=True)
    bodies = subprocess.run([*command, "--csv", tmp_path / "bodies.csv", "--ref-labels", "1-7"], capture_output=True,
                            text=True)
    assert every.returncode == 0 and bodies.returncode == 0, every.stderr + bodies.stderr
    every, bodies = (next(csv.DictReader(open(tmp_path / f"{n}.csv", encoding="utf-8"))) for n in ("every", "bodies"))
    assert int(every["bodies"]) == 4 and float(every["bodies_found"]) == pytest.approx(0.5)  # sacrum, disc "missed"
    assert int(bodies["bodies"]) == 2 and float(bodies["bodies_found"]) == 1.0
    assert float(bodies["dice"]) == 1.0 and float(every["dice"]) < 1.0
    refused = subprocess.run([*command, "--csv", tmp_path / "x.csv", "--ref-labels", "1-x"], capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "--ref-labels" in refused.stderr and not (tmp_path / "x.csv").exists()
