import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from saunet.checkpoints import Checkpoint
from saunet.experiments.reports import metrics_table, overlay_figure, paired_table, sagittal_view


def test_metrics_table_shows_mean_and_std_in_percent():
    rows = [{"model": "a", "dice": 0.9, "hd": 2.0}, {"model": "a", "dice": 0.8, "hd": 4.0},
            {"model": "b", "dice": 1.0, "hd": 1.0}]
    table = metrics_table(rows, metrics=("dice", "hd"))
    assert "| a | 2 | 85.00 ± 5.00 | 3.00 ± 1.00 |" in table
    assert "| b | 1 | 100.00 ± 0.00 | 1.00 ± 0.00 |" in table


def test_paired_table_compares_the_cases_both_models_have():
    rows = [{"model": "a", "case": "x", "dice": 0.9, "hd": 2.0}, {"model": "a", "case": "y", "dice": 0.8, "hd": 9.0},
            {"model": "a", "case": "z", "dice": 0.1, "hd": 99.0},  # b has no z: left out
            {"model": "b", "case": "x", "dice": 0.7, "hd": 4.0}, {"model": "b", "case": "y", "dice": 0.9, "hd": 10.0}]
    table = paired_table(rows, "a", "b", metrics=("dice", "hd"))
    assert "| Dice (%) | +5.00 ± 15.00 | 1 of 2 |" in table  # differences +0.2 and -0.1
    assert "| HD (mm) | -1.50 ± 0.50 | 2 of 2 |" in table  # lower is better


def test_cv_report_of_unfinished_folds_compares_on_common_cases(tmp_path):
    from saunet.crossval import CVResult
    from saunet.experiments.cv_report import write_cv_report
    from saunet.training import TrainConfig

    def row(model, fold, case, dice, hd):
        return {"model": model, "fold": fold, "case": case, "dice": dice, "jaccard": dice, "precision": dice,
                "recall": dice, "hd": hd, "hd95": hd, "assd": hd / 4}

    rows = [row("sau-net", 0, "p", 0.9, 5.0), row("sau-net", 0, "q", 0.92, 6.0), row("sau-net", 1, "r", 0.5, 80.0),
            row("dense-unet", 0, "p", 0.88, 20.0), row("dense-unet", 0, "q", 0.91, 30.0),
            row("unet2d", 0, "p", 0.95, 4.0), row("unet2d", 0, "q", 0.93, 5.0)]
    history = [{"epoch": 1, "train_loss": 1.0, "val_dice": 0.5}]
    result = CVResult(rows, rows, {"sau-net fold 0": history}, fold_count=2)
    report = write_cv_report(result, tmp_path, "saunet cv ...", TrainConfig()).read_text(encoding="utf-8")
    assert "sau-net 2 (3 cases); dense-unet 1 (2 cases); unet2d 1 (2 cases)" in report
    assert "Table 1 on the 2 cases every model has been tested on" in report
    assert "| sau-net | 2 | 91.00 ± 1.00 |" in report  # the common cases only, without case r
    assert "| sau-net − unet2d per case | sau-net better |" in report  # the baselines, paired
    assert "| Dice (%) | -3.00 ± 2.00 | 0 of 2 |" in report
    assert "| HD (mm) | -19.50 ± 4.50 | 2 of 2 |" in report  # the ablation, paired


def test_overlay_colours_errors(tmp_path):
    image = np.zeros((3, 20, 20))
    ref = np.zeros((3, 20, 20), np.uint8)
    ref[:, 5:10, 5:10] = 1
    pred = np.zeros_like(ref)
    pred[:, 5:10, 8:14] = 1
    path = overlay_figure(image, ref, {"m": pred}, tmp_path / "o.png", slices=[1])
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_sagittal_view_puts_superior_up(tmp_path):
    from saunet.experiments.phantoms import make_phantom, phantom_volume

    phantom = make_phantom(0, shape=(7, 48, 48))
    view = sagittal_view(phantom_volume(phantom, tmp_path / "p"), phantom.label)
    rows_of = {k: np.argwhere(view == k)[:, 1].mean() for k in (1, 5)}
    assert rows_of[1] < rows_of[5]  # label 1 is the most cranial body: nearer the top


def test_cv_command_on_a_small_run_writes_tables_and_figures_and_resumes(phantom_data, tmp_path):
    command = [sys.executable, "-m", "saunet.cli", "cv", "--data", str(phantom_data), "--folds", "2",
               "--models", "sau-net,dense-unet", "--out", str(tmp_path / "cv"), "--report", str(tmp_path / "report"),
               "--width", "4,8,16", "--growth", "4", "--epochs", "1", "--steps-per-epoch", "2", "--patch", "32",
               "--workers", "2"]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    splits = json.loads((tmp_path / "cv" / "splits.json").read_text(encoding="utf-8"))["folds"]
    assert len(splits) == 2 and sorted(n for s in splits for n in s["test"]) == [f"phantom_{i:03d}" for i in range(6)]
    result = json.loads((tmp_path / "report" / "cv.json").read_text(encoding="utf-8"))
    assert len(result["cases"]) == 12  # 6 cases x 2 models, their 4 folds trained 2 at a time
    assert first.stdout.count("finished ") == 4
    assert set(result["cases"][0]) == {"model", "fold", "case", "dataset", "dice", "jaccard", "precision", "recall", "hd",
                                       "hd95", "assd", "body_dice", "bodies_found", "bodies_named", "bodies"}
    report = (tmp_path / "report" / "cv.md").read_text(encoding="utf-8")
    assert (tmp_path / "report" / "splits.json").exists()
    assert "Table 1" in report and "Table 4" in report and "saunet cv --data" in report and "± " in report
    figures = sorted(p.name for p in (tmp_path / "report" / "figures").iterdir())
    assert "cv_boxplots.png" in figures and "cv_training_curves.png" in figures
    assert any(f.startswith("cv_overlay_") for f in figures)

    # each of the two workers trains on its share of the CPU's threads
    assert re.search(r"Trained on: sau-net cpu \(threads: \d+\) \(2 folds\); dense-unet cpu \(threads: \d+\) \(2 folds\)",
                     report)

    checkpoint = tmp_path / "cv" / "sau-net" / "fold_0" / "checkpoint_last.pt"
    model_kwargs = Checkpoint.load(checkpoint).model_kwargs
    assert model_kwargs["features"] == [4, 8, 16] and model_kwargs["growth"] == 4
    prediction = next((tmp_path / "cv" / "sau-net" / "fold_0" / "predictions").iterdir())
    stamps = checkpoint.stat().st_mtime_ns, prediction.stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    # finished folds are neither trained nor tested again
    assert (checkpoint.stat().st_mtime_ns, prediction.stat().st_mtime_ns) == stamps
    assert json.loads((tmp_path / "report" / "cv.json").read_text(encoding="utf-8"))["cases"] == result["cases"]

    # a fold trained elsewhere counts with its evaluation.json and predictions alone
    for path in (tmp_path / "cv" / "dense-unet" / "fold_1").glob("*.pt"):
        path.unlink()
    partial = [*command, "--finished-only"]
    partial[partial.index("sau-net,dense-unet")] = "sau-net,dense-unet,unet2d"
    report_only = subprocess.run(partial, capture_output=True, text=True)
    assert report_only.returncode == 0, report_only.stderr
    assert not (tmp_path / "cv" / "unet2d").exists()  # nothing trained
    assert len(json.loads((tmp_path / "report" / "cv.json").read_text(encoding="utf-8"))["cases"]) == 12

    # one fold of another model, the others left to another machine
    one_fold = [*command, "--only-folds", "1"]
    one_fold[one_fold.index("sau-net,dense-unet")] = "unet2d"
    del one_fold[one_fold.index("--width"): one_fold.index("--growth") + 2]
    assert subprocess.run(one_fold, capture_output=True, text=True).returncode == 0
    assert (tmp_path / "cv" / "unet2d" / "fold_1" / "evaluation.json").exists()
    assert not (tmp_path / "cv" / "unet2d" / "fold_0").exists()
    assert {c["fold"] for c in json.loads((tmp_path / "report" / "cv.json").read_text(encoding="utf-8"))["cases"]} == {1}


def test_cv_start_from_continues_each_fold_of_an_earlier_cv(phantom_data, tmp_path):
    from saunet.checkpoints import Checkpoint

    def cv(out, *extra):
        return subprocess.run([sys.executable, "-m", "saunet.cli", "cv", "--data", str(phantom_data), "--folds", "2",
                               "--models", "sau-net", "--out", str(out), "--width", "4,8,16", "--steps-per-epoch", "2",
                               "--patch", "32", "--only-folds", "0", *extra], capture_output=True, text=True)

    assert cv(tmp_path / "first", "--epochs", "1").returncode == 0
    earlier = Checkpoint.load(tmp_path / "first" / "sau-net" / "fold_0" / "checkpoint_last.pt")
    second = cv(tmp_path / "second", "--epochs", "2", "--start-from", str(tmp_path / "first"))
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "second" / "splits.json").read_text() == (tmp_path / "first" / "splits.json").read_text()
    continued = Checkpoint.load(tmp_path / "second" / "sau-net" / "fold_0" / "checkpoint_last.pt")
    assert continued.epoch == 2 and continued.history[0] == earlier.history[0] and len(continued.history) == 2
    assert (tmp_path / "second" / "sau-net" / "fold_0" / "evaluation.json").exists()

    other = tmp_path / "other"  # the same cases split otherwise
    other.mkdir()
    splits = json.loads((tmp_path / "first" / "splits.json").read_text())
    splits["folds"] = splits["folds"][::-1]
    (other / "splits.json").write_text(json.dumps(splits))
    refused = cv(other, "--epochs", "2", "--start-from", str(tmp_path / "first"))
    assert refused.returncode == 2 and "folds differ" in refused.stderr and "Traceback" not in refused.stderr
    assert not (other / "sau-net").exists()
    not_cv = cv(tmp_path / "third", "--epochs", "2", "--start-from", str(tmp_path / "nowhere"))
    assert not_cv.returncode == 2 and "not a CV folder" in not_cv.stderr and "Traceback" not in not_cv.stderr


def test_killing_cv_stops_its_fold_workers(phantom_data, tmp_path):
    import os
    import signal
    import time

    command = [sys.executable, "-m", "saunet.cli", "cv", "--data", str(phantom_data), "--folds", "2",
               "--models", "sau-net", "--out", str(tmp_path / "cv"), "--width", "4,8,16", "--epochs", "500",
               "--patch", "32", "--workers", "2"]
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children():
        found = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]

    deadline = time.time() + 60
    while not (tmp_path / "cv" / "sau-net" / "fold_0" / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.5)
    workers = children()
    assert len(workers) >= 2  # the fold workers (and the executor's resource tracker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    def running(pid):  # a zombie waiting for a reaper has exited
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.time() + 30
    while any(running(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.5)
    alive = [pid for pid in workers if running(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "fold workers outlived the killed cv process"


def test_saved_fold_evaluation_reads_back_infinite_distances(tmp_path):
    from saunet.crossval import EVALUATION_FILE, fold_finished, saved_evaluation
    from saunet.files import write_json

    row = {"model": "unet2d", "fold": 0, "case": "a", "dice": 0.0, "hd": math.inf, "hd95": math.inf}
    write_json({"epochs": 3, "trained_on": "cpu", "max_components": 7, "history": [], "cases": [row],
                "cases_without_postprocessing": [row]}, tmp_path / EVALUATION_FILE)
    assert saved_evaluation(tmp_path, 3)["cases"][0]["hd"] == math.inf
    assert fold_finished(tmp_path, 3)
    assert saved_evaluation(tmp_path, 4) is None and not fold_finished(tmp_path, 4)  # trained for fewer epochs


def test_overlay_shows_the_slice_of_a_distant_false_positive():
    from saunet.experiments.reports import overlay_slices

    reference = np.zeros((10, 20, 20), np.uint8)
    reference[4:7, 5:15, 5:15] = 1
    reference[5, 4:16, 4:16] = 1  # the mid-sagittal slice holds the most reference
    prediction = reference.copy()
    prediction[1, 2:4, 2:4] = 1  # a small false positive far to the side
    prediction[6, 5:15, 5:8] = 0  # missed voxels
    assert overlay_slices(reference, prediction) == [1, 5, 6]
    assert overlay_slices(reference, None) == [4, 5, 6]


def test_overlay_of_a_perfect_prediction_shows_the_largest_slices():
    from saunet.experiments.reports import overlay_slices

    reference = np.zeros((10, 20, 20), np.uint8)
    reference[3:8, 5:15, 5:15] = 1  # 100 voxels per slice
    reference[5, 4:16, 4:16] = 1  # 144
    reference[4, 4:15, 4:15] = 1  # 121
    reference[6, 4:15, 5:15] = 1  # 110
    assert overlay_slices(reference, reference.copy()) == overlay_slices(reference, None) == [4, 5, 6]


def test_splits_of_several_data_sets_test_every_set_in_every_fold():
    from saunet.crossval import make_splits

    names = [f"a{i}" for i in range(6)] + [f"b{i}" for i in range(10)]
    datasets = {n: n[0] for n in names}
    splits = make_splits(names, 3, seed=0, datasets=datasets)
    assert sorted(n for s in splits for n in s["test"]) == sorted(names)
    for split in splits:
        assert {datasets[n] for n in split["test"]} == {"a", "b"} and sorted(datasets[n] for n in split["val"]) == ["a", "b"]
        assert not set(split["train"]) & set(split["test"] + split["val"])
    assert make_splits(names[:6], 3, seed=0, datasets={n: "a" for n in names[:6]}) == make_splits(names[:6], 3, seed=0)


def test_a_fold_ensemble_takes_the_same_fold_of_cv_folders_with_the_same_splits_only(tmp_path):
    import json

    import pytest

    from saunet.crossval import fold_checkpoints, make_splits
    from saunet.errors import InputError

    names = [f"a{i}" for i in range(6)]
    for cv, seed in (("seed0", 0), ("seed1", 0), ("other", 1)):
        (tmp_path / cv).mkdir()
        (tmp_path / cv / "splits.json").write_text(json.dumps({"seed": seed, "folds": make_splits(names, 3, seed=seed)}))
    run_dir = tmp_path / "seed0" / "sau-net" / "fold_2"
    assert fold_checkpoints(run_dir, [tmp_path / "seed1"]) == [run_dir / "checkpoint_best.pt",
                                                             tmp_path / "seed1" / "sau-net" / "fold_2" / "checkpoint_best.pt"]
    with pytest.raises(InputError, match="not the folds"):
        fold_checkpoints(run_dir, [tmp_path / "other"])


def test_cv_over_two_data_sets_reports_each(tmp_path):
    """Two phantom sets, one annotating levels 2-3 only: a level model cross-validated on both, every fold testing
    both, and the report gives each set its own table with body-wise scores."""
    from saunet.experiments.phantoms import write_cohort
    from saunet.imageio import read_volume, write_like

    for name, seed in (("full", 0), ("partial", 20)):
        write_cohort(tmp_path / name, 4, seed=seed, shape=(5, 40, 40), vertebrae=3)
        for path in (tmp_path / name / "imagesTr").iterdir():
            path.rename(path.with_name(path.name.replace("phantom", name)))
        for path in (tmp_path / name / "labelsTr").iterdir():
            label = read_volume(path)
            kept = np.where(label.array == 1, 0, label.array) if name == "partial" else label.array
            write_like(kept.astype(np.uint8), label, path.with_name(path.name.replace("phantom", name)))
            path.unlink()
    meta = json.loads((tmp_path / "partial" / "dataset.json").read_text())
    (tmp_path / "partial" / "dataset.json").write_text(json.dumps({**meta, "annotated_labels": [2, 3]}))
    command = [sys.executable, "-m", "saunet.cli", "cv", "--data", str(tmp_path / "full"), "--data", str(tmp_path / "partial"),
               "--folds", "2", "--models", "sau-net,dense-unet", "--out", str(tmp_path / "cv"), "--classes", "1,2,3",
               "--width", "4,8,16", "--epochs", "1", "--steps-per-epoch", "2", "--patch", "32"]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = json.loads((tmp_path / "cv" / "cv.json").read_text(encoding="utf-8"))["cases"]
    assert {(r["model"], r["dataset"]) for r in rows} == {(m, d) for m in ("sau-net", "dense-unet") for d in ("full", "partial")}
    report = (tmp_path / "cv" / "cv.md").read_text(encoding="utf-8")
    assert "### full" in report and "### partial" in report and "body-wise Dice" in report


def test_thick_slice_copies_keep_every_kth_slice_with_its_geometry(tmp_path):
    from helpers import phantom_pair
    from saunet.experiments.thick_slices import thinned
    from saunet.imageio import read_volume, write_like

    image_path, _ = phantom_pair(tmp_path, "scan.nii.gz", "label.nii.gz", shape=(9, 40, 40))
    volume = read_volume(image_path)
    thin = thinned(volume, 0, 4)
    assert thin.array.shape == (3, 40, 40) and np.array_equal(thin.array, volume.array[::4])
    assert thin.spacing[0] == 4 * volume.spacing[0] and thin.origin == volume.origin
    written = read_volume(write_like(thin.array, thin, tmp_path / "thin.nii.gz"))  # a valid image of its own
    assert np.allclose(written.spacing, thin.spacing)


@pytest.mark.parametrize("flipped", [False, True])
def test_field_cuts_drop_the_side_beyond_a_levels_centre_whatever_the_layout(flipped):
    import SimpleITK as sitk

    from saunet.experiments.thick_slices import FIELD_CUTS, scan_variant
    from saunet.imageio import Volume
    from saunet.orientation import Layout, direction_of

    layout = Layout((2, 0, 1), (False, flipped, False))  # superior on stored axis 0, decreasing when flipped
    canonical = np.zeros((6, 80, 20), np.uint8)  # slices, superior, posterior
    for level in range(1, 8):  # T11 (1) most cranial: highest canonical row
        canonical[:, (7 - level) * 10 + 2 : (7 - level) * 10 + 10] = level
    stored = layout.from_canonical(canonical)
    reference = sitk.GetImageFromArray(stored)
    reference.SetDirection(direction_of(layout).ravel().tolist())
    label = Volume(stored, reference, Path("label.nii.gz"))
    image = Volume(stored.astype(np.float32), reference, Path("scan.nii.gz"))
    for kind, (level, direction) in FIELD_CUTS.items():
        cropped_image, cropped = scan_variant(image, label, kind)
        kept = {v: int((cropped.array == v).sum()) for v in range(1, 8)}
        assert kept[level] == (stored == level).sum() // 2  # the cut body halved
        gone = range(1, level) if direction > 0 else range(level + 1, 8)
        assert all(kept[v] == 0 for v in gone) and all(kept[v] == (stored == v).sum() for v in range(1, 8)
                                                       if v != level and v not in gone)
        assert np.array_equal(cropped_image.array, cropped.array.astype(np.float32))
        first = reference.TransformPhysicalPointToIndex(cropped.reference.TransformIndexToPhysicalPoint((0, 0, 0)))
        window = tuple(slice(i, i + n) for i, n in zip(reversed(first), cropped.array.shape))
        assert np.array_equal(stored[window], cropped.array)  # every voxel where it was in the world


def test_contrast_transforms_invert_and_darken_the_brightest():
    from saunet.experiments.qc_calibration import contrasts

    ramp = np.linspace(0, 1000, 1000, dtype=np.float32).reshape(10, 10, 10)
    assert list(contrasts(ramp, ("original",))) == ["original"]  # --contrast original: the scans as they are alone
    made = contrasts(ramp)
    assert made["inverted"][0, 0, 0] > made["inverted"][-1, -1, -1]
    t1 = made["T1-like"]
    assert t1[5, 0, 0] > t1[0, 0, 0] and t1[5, 0, 0] > t1[-1, -1, -1]  # mid-grey brightest, fluid dark
    held_out = contrasts(ramp, ("dark-squared", "valley"))
    assert list(held_out) == ["dark-squared", "valley"]
    dark = held_out["dark-squared"].ravel()
    assert np.all(np.diff(dark) <= 0) and dark[500] < 0.5 * made["inverted"].ravel()[500]  # inverted, darks compressed
    valley = held_out["valley"]
    assert valley[5, 0, 0] < valley[0, 0, 0] and valley[5, 0, 0] < valley[-1, -1, -1]  # mid-grey darkest


def test_measurements_paired_by_name_and_by_body(tmp_path):
    from helpers import phantom_pair
    from saunet.experiments.qc_calibration import agreement, paired_measures
    from saunet.imageio import read_volume

    _, label_path = phantom_pair(tmp_path, "scan.nii.gz", "label.nii.gz", shape=(9, 64, 64))
    expert = read_volume(label_path)
    named_down = np.where(expert.array > 0, expert.array + 1, 0)  # every body named one level too low
    rows = paired_measures(named_down, expert.array, expert)
    assert [r["overlapping_level"] for r in rows] == [r["level"] + 1 for r in rows]
    for row in rows:
        assert row["volume_cm3_body"] == row["volume_cm3_ref"]
    named, _ = agreement([{"dataset": "d", "contrast": "original", "measures": rows}])
    by_body, _ = agreement([{"dataset": "d", "contrast": "original", "measures": rows}], "body")
    volume_row = next(line for line in by_body.splitlines() if "volume_cm3" in line)
    assert "| 0.00 %" in volume_row and volume_row not in named


def test_cross_site_scores_every_scan_of_the_given_sets_at_its_own_and_at_thick_slices(phantom_data, tmp_path):
    from saunet.experiments import cross_site

    command = [sys.executable, "-m", "saunet.cli", "cv", "--data", str(phantom_data), "--folds", "2", "--only-folds", "0",
               "--models", "sau-net", "--out", str(tmp_path / "cv"), "--width", "4,8,16", "--epochs", "1",
               "--steps-per-epoch", "2", "--patch", "32"]
    assert subprocess.run(command, capture_output=True, text=True).returncode == 0
    cross_site.main(["--cv", str(tmp_path / "cv"), "--data", str(phantom_data), "--epochs", "1", "--out", str(tmp_path / "x")])
    rows = json.loads((tmp_path / "x" / "cases.json").read_text(encoding="utf-8"))
    name = phantom_data.name
    assert sorted((r["case"], r["dataset"]) for r in rows) == sorted(
        (f"phantom_{i:03d}", d) for i in range(6) for d in (name, f"{name} (~4 mm)"))  # every scan, not one fold's test
    assert {"body_dice", "bodies_found", "bodies_named", "verdict", "reasons", "fold"} <= set(rows[0])
    report = (tmp_path / "x" / "generated.md").read_text(encoding="utf-8")
    assert "python -m saunet.experiments.cross_site --cv" in report and f"| {name} (~4 mm) | 6 |" in report


def test_qc_calibration_of_an_ensemble_judges_and_measures_its_own_predictions_and_judges_them_again(phantom_data, tmp_path,
                                                                                                  monkeypatch):
    import shutil

    from saunet.experiments import qc_calibration

    (tmp_path / "seed1").mkdir()
    for cv, seed, folds in (("seed0", "0", "0,1"), ("seed1", "1", "0")):
        if cv == "seed1":  # the same folds, other initial weights and batches
            shutil.copy(tmp_path / "seed0" / "splits.json", tmp_path / "seed1" / "splits.json")
        command = [sys.executable, "-m", "saunet.cli", "cv", "--data", str(phantom_data), "--folds", "2", "--only-folds",
                   folds, "--models", "sau-net", "--out", str(tmp_path / cv), "--width", "4,8,16", "--epochs", "1",
                   "--steps-per-epoch", "2", "--patch", "32", "--seed", seed]
        assert subprocess.run(command, capture_output=True, text=True).returncode == 0
    qc_calibration.main(["--cv", str(tmp_path / "seed0"), "--member", str(tmp_path / "seed1"), "--data",
                         str(phantom_data), "--epochs", "1", "--out", str(tmp_path / "qc")])
    tested = json.loads((tmp_path / "seed0" / "splits.json").read_text())["folds"][0]["test"]
    rows = json.loads((tmp_path / "qc" / "qc_cases.json").read_text())
    assert sorted({r["case"] for r in rows}) == sorted(tested)  # fold 1: its second member never trained
    assert all(0 <= r["quality"]["statistics"]["member_disagreement"] <= 1 for r in rows)
    written = sorted(p.name.split(".")[0] for p in (tmp_path / "qc" / "predictions").iterdir())
    assert written == sorted(tested)  # the ensemble's own masks, which the measurements then read
    assert sorted(r["case"] for r in json.loads((tmp_path / "qc" / "measures.json").read_text())) == sorted(tested)
    evaluated = json.loads((tmp_path / "qc" / "evaluation.json").read_text())["cases"]  # scored as saunet cv scores
    assert sorted(r["case"] for r in evaluated) == sorted(tested)
    assert all({"dice", "hd95", "hd", "body_dice", "fold"} <= set(r) for r in evaluated)
    saved = (tmp_path / "qc" / "fold_0.json").read_text()
    qc_calibration.main(["--cv", str(tmp_path / "seed0"), "--member", str(tmp_path / "seed1"), "--data", str(phantom_data),
                         "--epochs", "1", "--out", str(tmp_path / "qc"), "--threshold", "member_disagreement=-1"])
    again = json.loads((tmp_path / "qc" / "qc_cases.json").read_text())
    assert all(r["verdict"] != "ok" and any("disagree" in x for x in r["reasons"]) for r in again)
    assert (tmp_path / "qc" / "fold_0.json").read_text() == saved  # judged again from the saved rows
    qc_calibration.main(["--cv", str(tmp_path / "seed0"), "--fallback", str(tmp_path / "seed1"), "--data",
                         str(phantom_data), "--epochs", "1", "--out", str(tmp_path / "qc-fallback"), "--contrast", "original"])
    rows = json.loads((tmp_path / "qc-fallback" / "qc_cases.json").read_text())
    assert {r["contrast"] for r in rows} == {"original"}
    handed = [r for r in rows if r["reasons"] and r["reasons"][0].startswith("segmented by the fallback model")]
    assert handed and all(r["verdict"] != "ok" for r in handed)  # one-epoch models: many results in doubt
    assert all(r["quality"]["statistics"]["member_disagreement"] is None for r in rows)  # seed 0 alone, then seed 1
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "qc-fallback" / "predictions").iterdir()) == sorted(tested)
    from saunet.datasets import list_cases, read_case
    from saunet.experiments import thick_slices
    from saunet.orientation import volume_layout

    image, label = read_case(next(c for c in list_cases(phantom_data) if c.name == tested[0]))
    monkeypatch.setattr(thick_slices, "TARGET_MM", 2 * image.spacing[volume_layout(image).slice_axis])  # every 2nd
    qc_calibration.main(["--cv", str(tmp_path / "seed0"), "--fallback", str(tmp_path / "seed1"), "--data",
                         str(phantom_data), "--epochs", "1", "--out", str(tmp_path / "qc-thick"), "--contrast", "thick"])
    thick = {r["case"]: r for r in json.loads((tmp_path / "qc-thick" / "qc_cases.json").read_text())}
    assert {r["contrast"] for r in thick.values()} == {"thick"} and sorted(thick) == sorted(tested)
    thin_image, thin_label, slice_mm = thick_slices.thick_copies(image, label)
    assert thin_image.array.shape != image.array.shape
    assert thick[tested[0]]["quality"]["statistics"]["slice_spacing_mm"] == pytest.approx(slice_mm)  # the thinned scan
    assert thick[tested[0]]["bodies"] == len(np.unique(thin_label.array[thin_label.array > 0]))  # and its thinned mask
    with pytest.raises(SystemExit) as refused:
        qc_calibration.main(["--cv", str(tmp_path / "seed0"), "--data", str(phantom_data), "--out", str(tmp_path / "qc"),
                             "--threshold", "courage=1"])
    assert refused.value.code == 2


def test_qc_calibration_with_the_folds_refiners_judges_and_measures_the_refined_results(phantom_data, tmp_path):
    from saunet.experiments import qc_calibration
    from saunet.imageio import read_volume
    from saunet.inference import Segmenter

    cv, fold = tmp_path / "cv", tmp_path / "cv" / "sau-net" / "fold_0"
    for command in (["cv", "--data", phantom_data, "--folds", "2", "--only-folds", "0", "--models", "sau-net", "--out", cv,
                     "--classes", "1,2,3,4,5", "--width", "4,8,16", "--epochs", "1", "--steps-per-epoch", "2", "--patch", "32"],
                    ["train-refiner", "--data", phantom_data, "--splits", cv / "splits.json", "--fold", "0", "--steps", "2",
                     "--width", "2,2,4,4,8,2", "--out", fold]):
        result = subprocess.run([sys.executable, "-m", "saunet.cli", *map(str, command)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    qc_calibration.main(["--cv", str(cv), "--data", str(phantom_data), "--epochs", "1", "--refine",
                         "--out", str(tmp_path / "qc")])
    tested = json.loads((cv / "splits.json").read_text())["folds"][0]["test"]
    assert sorted({r["case"] for r in json.loads((tmp_path / "qc" / "qc_cases.json").read_text())}) == sorted(tested)
    refined, plain = (Segmenter([fold / "checkpoint_best.pt"], fallback=False, refine=r) for r in (fold / "refiner.onnx", False))
    changed = 0
    for case in tested:
        image = read_volume(phantom_data / "imagesTr" / f"{case}_0000.nii.gz")
        written = read_volume(next((tmp_path / "qc" / "predictions").glob(f"{case}.*"))).array
        assert np.array_equal(written, refined.segment(image).labels)  # the refined result is what is judged
        changed += not np.array_equal(written, plain.segment(image).labels)
    assert changed  # and the refiner did redraw
    assert sorted(r["case"] for r in json.loads((tmp_path / "qc" / "measures.json").read_text())) == sorted(tested)
    from saunet.experiments import thick_slices

    thick = {}
    for refine in ([], ["--refine"]):
        thick_slices.main(["--cv", str(cv), "--data", str(phantom_data), "--epochs", "1", "--out", str(tmp_path / "t"), *refine])
        thick[bool(refine)] = json.loads((tmp_path / "t" / "cases.json").read_text())
    assert sorted(r["case"] for r in thick[True]) == sorted(tested)
    assert [r["body_dice"] for r in thick[True]] != [r["body_dice"] for r in thick[False]]  # the thinned scans redrawn


def test_a_body_measured_shorter_than_its_expert_mask_counts_as_a_suggested_fracture_the_expert_mask_lacks(tmp_path):
    import SimpleITK as sitk

    from saunet.experiments.qc_calibration import grade_table, paired_measures
    from saunet.imageio import read_volume

    expert = np.zeros((86, 40, 16), np.uint8)  # numpy (z, y, x) = (S, P, L) at 1 mm: five bodies stacked, 12 mm tall, 4 mm discs
    for level in range(1, 6):
        top = 80 - (level - 1) * 16
        expert[top - 12 : top, 10:30, 2:14] = level
    path = tmp_path / "levels.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(expert), str(path))
    volume = read_volume(path)
    predicted = expert.copy()
    predicted[(predicted == 3) & (np.arange(86)[:, None, None] >= np.flatnonzero((expert == 3).any((1, 2)))[0] + 6)] = 0
    rows = paired_measures(predicted, volume.array, volume)
    grades = {r["name"]: (r["grade_ref"], r["grade_pred"]) for r in rows}
    assert grades["L1"] == ("none", "severe")  # level 3, half its height lost
    assert grades["T11"] == ("none", "none") and grades["L3"] == ("none", "none")
    table = grade_table([{"dataset": "d", "contrast": "original", "measures": rows}])
    assert "| d | none | 4 | 0 | 0 | 1 |" in table
    assert "for 1 of 5 levels graded on both" in table
