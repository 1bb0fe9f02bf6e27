"""Every bad input through the `saunet` command: one line naming the file, exit 2, no traceback, nothing written."""

import gzip
import subprocess
import sys

import nibabel
import numpy as np
import pytest
from tests.helpers import phantom_pair, write_image

SAUNET = [sys.executable, "-m", "saunet.cli"]


def run(*args, cwd=None):
    return subprocess.run([*SAUNET, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def assert_clean_failure(result, path, words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(path) in lines[0]
    assert any(w in lines[0].lower() for w in words), lines[0]


def bad_images(tmp_path):
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.nii.gz"
    noise = np.random.default_rng(0).normal(size=(8, 30, 40)).astype(np.float32)
    good = write_image(noise, tmp_path / "good.nii.gz")
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.nii.gz"
    text.write_bytes(gzip.compress(b"this is not an image"))
    flat = write_image(np.ones((9, 10), np.float32), tmp_path / "flat.nii.gz")
    four = tmp_path / "four.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.ones((5, 4, 3, 2), np.float32), np.eye(4)), four)
    nan = np.ones((4, 5, 6), np.float32)
    nan[2, 2, 2] = np.nan
    inf = np.ones((4, 5, 6), np.float32)
    inf[0, 0, 0] = np.inf
    return {
        "missing": (tmp_path / "missing.nii.gz", ["no such"]),
        "empty": (empty, ["empty"]),
        "truncated": (truncated, ["truncated", "not a readable image"]),
        "not an image": (text, ["not a readable image"]),
        "2D": (flat, ["2d", "expected a 3d"]),
        "4D": (four, ["4d", "expected a 3d"]),
        "NaN": (write_image(nan, tmp_path / "nan.nii.gz"), ["nan"]),
        "infinite": (write_image(inf, tmp_path / "inf.mha"), ["infinite"]),
    }


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "not an image", "2D", "4D", "NaN", "infinite"])
def test_segment_refuses_bad_image(tmp_path, kind, tiny_checkpoint):
    path, words = bad_images(tmp_path)[kind]
    out = tmp_path / "out" / "seg.nii.gz"
    result = run("segment", path, "-o", out, "--model", tiny_checkpoint)
    assert_clean_failure(result, path, words)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_segment_refuses_bad_checkpoint(tmp_path):
    image, _ = phantom_pair(tmp_path, "img.nii.gz", "lab.nii.gz")
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"not a checkpoint")
    result = run("segment", image, "-o", tmp_path / "seg.nii.gz", "--model", fake)
    assert_clean_failure(result, fake, ["checkpoint"])
    assert not (tmp_path / "seg.nii.gz").exists()


def _layout(tmp_path, n=2):
    for i in range(n):
        phantom_pair(tmp_path / "data", f"imagesTr/c{i}_0000.nii.gz", f"labelsTr/c{i}.nii.gz", seed=i)
    (tmp_path / "data" / "dataset.json").write_text('{"labels": {"background": 0, "a": 1, "b": 2, "c": 3, "d": 4, "e": 5}}')
    return tmp_path / "data"


def test_check_data_names_mismatched_geometry(tmp_path):
    data = _layout(tmp_path)
    label = data / "labelsTr" / "c1.nii.gz"
    write_image(np.zeros((7, 40, 41), np.uint8), label)
    result = run("check-data", data)
    assert result.returncode == 2
    assert "c1.nii.gz: geometry does not match its image" in result.stdout
    assert "Traceback" not in result.stderr


def test_check_data_names_unknown_labels_and_passes_good_data(tmp_path):
    data = _layout(tmp_path)
    assert run("check-data", data).returncode == 0
    (data / "dataset.json").write_text('{"labels": {"background": 0, "a": 1}}')
    result = run("check-data", data)
    assert result.returncode == 2
    assert "not among the data set's labels" in result.stdout


def test_train_refuses_mismatched_pair(tmp_path):
    data = _layout(tmp_path)
    label = data / "labelsTr" / "c0.nii.gz"
    write_image(np.zeros((7, 40, 40), np.uint8), label, spacing=(2.0, 1.0, 1.0))
    result = run("train", "--data", data, "--out", tmp_path / "run", "--epochs", "1", "--val", "0")
    assert_clean_failure(result, label, ["geometry"])
    assert not (tmp_path / "run").exists()


def test_train_refuses_missing_data_folder(tmp_path):
    result = run("train", "--data", tmp_path / "nowhere", "--out", tmp_path / "run")
    assert_clean_failure(result, tmp_path / "nowhere", ["no such"])


def test_evaluate_refuses_geometry_mismatch(tmp_path):
    ref = write_image(np.zeros((4, 5, 6), np.uint8), tmp_path / "ref" / "case1.nii.gz")
    pred = write_image(np.zeros((4, 5, 6), np.uint8), tmp_path / "pred" / "case1.nii.gz", spacing=(1, 1, 3))
    result = run("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--csv", tmp_path / "m.csv")
    assert_clean_failure(result, pred, ["geometry"])
    assert "case1" in result.stderr and ref.exists()
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize("folds", ["abc", "1", "-3", "2.5"])
def test_cv_refuses_bad_fold_counts(tmp_path, folds):
    result = run("cv", "--data", tmp_path, "--folds", folds, "--out", tmp_path / "cv")
    assert_clean_failure(result, "--folds", ["folds"])
    assert not (tmp_path / "cv").exists()


@pytest.mark.parametrize("share", ["1.5", "-0.1"])
@pytest.mark.parametrize("option", ["--thick-slices", "--field-edges"])
def test_train_refuses_a_share_of_stacks_outside_0_to_1(tmp_path, share, option):
    result = run("train", "--data", tmp_path, option, share, "--out", tmp_path / "run")
    assert_clean_failure(result, option, ["share"])
    assert not (tmp_path / "run").exists()


def test_train_refuses_classes_that_are_not_label_values(tmp_path):
    result = run("train", "--data", tmp_path, "--classes", "1,x", "--out", tmp_path / "run")
    assert_clean_failure(result, "--classes", ["label values"])
    assert not (tmp_path / "run").exists()


def test_cv_refuses_unreadable_splits(tmp_path):
    data = tmp_path / "data"
    for i in range(3):
        phantom_pair(data, f"imagesTr/case{i}_0000.nii.gz", f"labelsTr/case{i}.nii.gz", seed=i, shape=(5, 24, 24))
    splits = tmp_path / "cv" / "splits.json"
    splits.parent.mkdir()
    for content in ("{not json", '{"folds": [{"test": ["nobody"], "train": [], "val": []}]}', '{"no": 1}'):
        splits.write_text(content, encoding="utf-8")
        result = run("cv", "--data", data, "--folds", 2, "--out", tmp_path / "cv", "--epochs", 1)
        assert_clean_failure(result, splits, ["splits"])


def test_train_refiner_refuses_a_missing_unreadable_or_foreign_splits_file_and_a_fold_it_lacks(tmp_path):
    data = tmp_path / "data"
    for i in range(3):
        phantom_pair(data, f"imagesTr/case{i}_0000.nii.gz", f"labelsTr/case{i}.nii.gz", seed=i, shape=(5, 24, 24))
    splits = tmp_path / "splits.json"
    for content, words in ((None, ["no such"]), ("{not json", ["splits"]),
                           ('{"folds": [{"test": ["nobody"], "train": [], "val": []}]}', ["lacks"]),
                           ('{"folds": [{"test": ["case0"], "train": ["case1"], "val": []}]}', ["fold 3"])):
        if content is not None:
            splits.write_text(content, encoding="utf-8")
        result = run("train-refiner", "--data", data, "--splits", splits, "--fold", 3, "--out", tmp_path / "run")
        assert_clean_failure(result, splits, words)
        assert not (tmp_path / "run").exists()


def test_train_refiner_refuses_widths_that_are_not_six_whole_numbers(tmp_path):
    phantom_pair(tmp_path / "data", "imagesTr/case0_0000.nii.gz", "labelsTr/case0.nii.gz", seed=0, shape=(5, 24, 24))
    for widths in ("8,16", "8,16,32,64,128,x", "8,16,32,64,128,0"):
        result = run("train-refiner", "--data", tmp_path / "data", "--width", widths, "--out", tmp_path / "run")
        assert_clean_failure(result, "--width", ["6 positive whole numbers"])
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "cv"])
def test_train_and_cv_refuse_widths_that_are_not_whole_numbers(tmp_path, command):
    for widths in ("8,x", "8,0", "8,-16"):
        result = run(command, "--data", tmp_path, "--width", widths, "--out", tmp_path / "run")
        assert_clean_failure(result, "--width", ["positive whole numbers"])
        assert not (tmp_path / "run").exists()


def test_cv_refuses_a_negative_number_of_loader_workers(tmp_path):
    result = run("cv", "--data", tmp_path, "--loader-workers", "-1", "--out", tmp_path / "cv")
    assert_clean_failure(result, "--loader-workers", ["processes"])
    assert not (tmp_path / "cv").exists()


def test_cv_refuses_a_growth_for_a_model_without_dense_convolutions(tmp_path):
    result = run("cv", "--data", tmp_path, "--models", "unet2d", "--growth", "32", "--out", tmp_path / "cv")
    assert_clean_failure(result, "--growth", ["dense"])
    assert not (tmp_path / "cv").exists()


def test_train_refiner_refuses_a_patch_side_its_network_cannot_pool_and_an_empty_batch(tmp_path):
    phantom_pair(tmp_path / "data", "imagesTr/case0_0000.nii.gz", "labelsTr/case0.nii.gz", seed=0, shape=(5, 24, 24))
    for option, value, words in (("--patch", 40, ["--patch", "multiple of 16"]), ("--patch", 0, ["--patch"]),
                                 ("--batch", 0, ["--batch", "positive"])):
        result = run("train-refiner", "--data", tmp_path / "data", option, value, "--out", tmp_path / "run")
        assert_clean_failure(result, option, words)
        assert not (tmp_path / "run").exists()
