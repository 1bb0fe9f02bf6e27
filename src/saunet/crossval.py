"""Cross-validation: patient splits saved once and reused by every model; resumable folds."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from saunet.datasets import list_cases, read_case
from saunet.evaluation import case_metrics, write_json
from saunet.imageio import output_suffix, write_like
from saunet.inference import MIN_COMPONENT_MM3, Segmenter
from saunet.training import TrainConfig, load_checkpoint, train, typical_component_count

EVALUATION_FILE = "evaluation.json"


def make_splits(case_names: list[str], folds: str | int, seed: int = 0) -> list[dict]:
    """Random patient splits: ``folds`` an int k (k-fold) or 'loo'. Each fold names its train, val and test
    cases; one training case per fold is held out for validation (checkpoint selection), never the test cases."""
    names = sorted(case_names)
    rng = np.random.default_rng(seed)
    order = [str(n) for n in rng.permutation(names)]
    k = len(names) if folds == "loo" else int(folds)
    if not 2 <= k <= len(names):
        raise ValueError(f"cannot make {k} folds from {len(names)} cases")
    tests = [sorted(str(n) for n in part) for part in np.array_split(order, k)]
    splits = []
    for i, test in enumerate(tests):
        rest = [n for n in order if n not in test]
        val = [rest[rng.integers(len(rest))]]
        splits.append({"fold": i, "train": sorted(n for n in rest if n not in val), "val": val, "test": test})
    return splits


def load_or_make_splits(path: Path, case_names: list[str], folds: str | int, seed: int = 0) -> list[dict]:
    """Read ``path`` when it exists (so every model uses the same folds), else make and write it."""
    if path.exists():
        splits = json.loads(path.read_text(encoding="utf-8"))["folds"]
        missing = {n for s in splits for n in s["test"]} - set(case_names)
        if missing:
            raise ValueError(f"{path}: splits name cases the data set lacks: {sorted(missing)}")
        return splits
    splits = make_splits(case_names, folds, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"folds_arg": str(folds), "seed": seed, "folds": splits}, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return splits


@dataclass
class CVResult:
    rows: list[dict]  # per case, fold and model, with post-processing (the pipeline)
    raw_rows: list[dict]  # the same without post-processing
    histories: dict[str, list[dict]]
    fold_count: int  # folds in the splits; fewer are reported when the run is unfinished
    trained_on: dict[str, str] = field(default_factory=dict)  # "model fold k": "cpu" or the GPU's name


def fold_finished(run_dir: Path, epochs: int) -> bool:
    return saved_evaluation(run_dir, epochs) is not None or training_finished(run_dir, epochs)


def training_finished(run_dir: Path, epochs: int) -> bool:
    last = run_dir / "checkpoint_last.pt"
    return last.exists() and load_checkpoint(last)["epoch"] >= epochs


def saved_evaluation(run_dir: Path, epochs: int) -> dict | None:
    """The fold's test results, written once its training had finished (``evaluation.json``), or None.

    A finished fold is tested once: a report rebuilt later reads this file instead of segmenting the test
    cases again, and a fold trained elsewhere counts with only this file and its predictions copied back.
    Delete the file to test the fold again (after changing the post-processing, say).
    """
    path = run_dir / EVALUATION_FILE
    if not path.exists():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    for row in saved["cases"] + saved["cases_without_postprocessing"]:  # JSON holds an infinite distance as null
        row.update({k: math.inf for k, v in row.items() if v is None})
    return saved if saved["epochs"] >= epochs else None


def _train_fold(config: TrainConfig, train_cases: list, val_cases: list, run_dir: Path, threads: int) -> Path:
    """One fold's training in a worker process (module level, so a spawned process can import it)."""
    import threading
    import time

    import torch

    def exit_with_parent(parent: int) -> None:  # a killed `saunet cv` must not leave folds training on
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)

    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    torch.set_num_threads(threads)
    train(config, train_cases, val_cases, run_dir, resume=True)
    return run_dir


def run_cv(data: Path, folds: str | int, models: list[str], out: Path, base: TrainConfig,
           seed: int = 0, progress: bool = True, finished_only: bool = False, workers: int = 1) -> CVResult:
    """Train and test every model on the same folds; finished folds are not trained again.

    Writes ``out/splits.json``, ``out/<model>/fold_<k>/`` (checkpoints, metrics.csv, predictions/) and
    ``out/cases.json`` with the per-case metrics. With ``finished_only`` nothing is trained: only the folds
    whose training has finished are tested, for a report on a run that is still going. ``workers`` > 1
    trains that many folds at once in separate processes, the CPU threads shared among them: on a small
    CPU, two one-thread trainings do about 1.4x the work of one two-thread training.
    """
    cases = {c.name: c for c in list_cases(data)}
    splits = load_or_make_splits(out / "splits.json", list(cases), folds, seed)
    configs = {model: replace(base, model=model) for model in models}
    pending = [(model, split) for model in models for split in splits
               if not fold_finished(out / model / f"fold_{split['fold']}", configs[model].epochs)]
    if pending and not finished_only:
        jobs = [(configs[model], [cases[n] for n in split["train"]], [cases[n] for n in split["val"]],
                 out / model / f"fold_{split['fold']}") for model, split in pending]
        if workers <= 1:
            for config, train_cases, val_cases, run_dir in jobs:
                if progress:
                    tqdm.write(f"{config.model} {run_dir.name}: training on {len(train_cases)} cases")
                train(config, train_cases, val_cases, run_dir, resume=True, progress=progress)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            import torch

            threads = max(1, torch.get_num_threads() // workers)
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(_train_fold, *job, threads) for job in jobs]
                for future in futures:
                    tqdm.write(f"finished {future.result()}")
    rows, raw_rows, histories, trained_on = [], [], {}, {}
    max_components: dict[int, int] = {}  # per fold: every model's folds share their training masks
    for model in models:
        config = configs[model]
        for split in splits:
            run_dir = out / model / f"fold_{split['fold']}"
            saved = saved_evaluation(run_dir, config.epochs)
            if saved is None:
                if not training_finished(run_dir, config.epochs):
                    continue
                # Counted here rather than read from the checkpoint: folds trained before checkpoints stored it
                # get the same post-processing.
                if split["fold"] not in max_components:
                    max_components[split["fold"]] = typical_component_count([cases[n] for n in split["train"]],
                                                                            config.label_map)
                saved = evaluate_fold(run_dir, [cases[n] for n in split["test"]], config,
                                      max_components[split["fold"]], {"model": model, "fold": split["fold"]})
            histories[f"{model} fold {split['fold']}"] = saved["history"]
            trained_on[f"{model} fold {split['fold']}"] = saved["trained_on"]
            rows += saved["cases"]
            raw_rows += saved["cases_without_postprocessing"]
    write_json({"cases": rows, "cases_without_postprocessing": raw_rows}, out / "cases.json")
    return CVResult(rows, raw_rows, histories, len(splits), trained_on)


def evaluate_fold(run_dir: Path, test_cases: list, config: TrainConfig, max_components: int, key: dict) -> dict:
    """Segment a finished fold's test cases with its best checkpoint (on the GPU when there is one), write the
    predictions and ``evaluation.json``: per-case metrics with and without post-processing, and the history."""
    import torch

    last = load_checkpoint(run_dir / "checkpoint_last.pt")
    segmenter = Segmenter(run_dir / "checkpoint_best.pt", device="cuda" if torch.cuda.is_available() else "cpu",
                          max_components=max_components)
    rows, raw_rows = [], []
    for case in test_cases:
        image, label = read_case(case)
        reference = config.label_map.apply(label.array)
        result = segmenter.segment(image, config.slice_axis)
        write_like(result.labels, image, run_dir / "predictions" / f"{case.name}{output_suffix(image.path)}")
        raw = (result.probabilities[0] > 0.5) if result.probabilities.shape[0] == 1 else result.labels
        rows.append({**key, "case": case.name, **case_metrics(result.labels > 0, reference > 0, image.spacing)})
        raw_rows.append({**key, "case": case.name, **case_metrics(raw > 0, reference > 0, image.spacing)})
    saved = {"epochs": last["epoch"], "trained_on": last.get("trained_on", "cpu"), "max_components": max_components,
             "history": last["history"], "cases": rows, "cases_without_postprocessing": raw_rows}
    write_json(saved, run_dir / EVALUATION_FILE)
    return saved


def write_cv_report(result: CVResult, report_dir: Path, command: str, config: TrainConfig,
                    cv_dir: Path | None = None, data: Path | None = None) -> Path:
    """cv.json (per-case rows, summaries, command, configuration), cv.md (the paper's tables) and figures."""
    from saunet.evaluation import summarise
    from saunet.models import count_parameters, create, full_arguments
    from saunet.reports import box_plots, metrics_table, paired_table, training_curves, write_text

    models = list(dict.fromkeys(r["model"] for r in result.rows))
    config_dict = {k: v for k, v in asdict(config).items() if k != "model"}
    arguments = {m: full_arguments(m, **config.model_kwargs) for m in models}
    parameters = {m: count_parameters(create(m, **arguments[m])) for m in models}
    write_json({
        "command": command,
        "config": config_dict,
        "model_arguments": arguments,
        "summary": {m: summarise([r for r in result.rows if r["model"] == m]) for m in models},
        "summary_without_postprocessing": {m: summarise([r for r in result.raw_rows if r["model"] == m])
                                           for m in models},
        "cases": result.rows,
        "cases_without_postprocessing": result.raw_rows,
    }, report_dir / "cv.json")
    figures = [box_plots(result.rows, report_dir / "figures" / "cv_boxplots.png"),
               training_curves(result.histories, report_dir / "figures" / "cv_training_curves.png")]
    if cv_dir is not None and data is not None:
        figures += _overlay_worst_case(result, cv_dir, data, report_dir, models)
        if cv_dir.resolve() != report_dir.resolve():  # the report carries the folds it was made on
            shutil.copyfile(cv_dir / "splits.json", report_dir / "splits.json")
    folds = {m: sorted({r["fold"] for r in result.rows if r["model"] == m}) for m in models}
    cases = {m: {r["case"] for r in result.rows if r["model"] == m} for m in models}
    common = set.intersection(*cases.values()) if cases else set()
    devices = {m: Counter(result.trained_on.get(f"{m} fold {f}", "unrecorded") for f in folds[m]) for m in models}
    text = [
        "# Cross-validation\n",
        f"Command: `{command}`\n",
        f"Folds reported, of {result.fold_count} (splits in `splits.json`, by patient, shared by every model): "
        + "; ".join(f"{m} {len(folds[m])} ({len(cases[m])} cases)" for m in models) + ".\n",
        "Configuration: " + ", ".join(f"{k}={v}" for k, v in config_dict.items()) + "\n",
        "Trained on: " + "; ".join(f"{m} " + ", ".join(f"{device} ({n} folds)" for device, n in devices[m].items())
                                   for m in models) + "\n",
        "Models: " + "; ".join(f"{m} ({parameters[m] / 1e6:.2f} M parameters: "
                               + ", ".join(f"{k}={v}" for k, v in arguments[m].items()) + ")" for m in models) + "\n",
        "## Table 1: models compared (with post-processing)\n",
        "Post-processing, the same for every model: connected components under "
        f"{MIN_COMPONENT_MM3:.0f} mm³ are removed, and only the N largest of the rest are kept, N being the median "
        "number of components in the fold's training masks (lumbar-t2: 7, the masks label T11-L5 only).\n",
        metrics_table(result.rows, groups=models),
    ]
    baselines = [m for m in models if m not in ("sau-net", "dense-unet")]  # dense-unet is Table 4's
    if "sau-net" in models and baselines:
        text += ["SAU-Net against each baseline, paired per case (cases both were tested on, with post-processing):\n"]
        text += [paired_table(result.rows, "sau-net", m) for m in baselines]
    text += ["## Without post-processing\n", metrics_table(result.raw_rows, groups=models)]
    if any(cases[m] != common for m in models):  # folds still running: compare on the same cases too
        text += [f"## Table 1 on the {len(common)} cases every model has been tested on (with post-processing)\n",
                 metrics_table([r for r in result.rows if r["case"] in common], groups=models)]
    if {"sau-net", "dense-unet"} <= set(models):
        both = cases["sau-net"] & cases["dense-unet"]
        text += ["## Table 4: ablation of the inter-slice attention (ISA)\n",
                 f"SAU-Net is the Dense U-Net (w/o ISA) plus the attention fusion; {len(both)} cases both were "
                 "tested on, with post-processing.\n",
                 metrics_table([{**r, "model": "w/ ISA" if r["model"] == "sau-net" else "w/o ISA"}
                                for r in result.rows if r["model"] in ("sau-net", "dense-unet") and r["case"] in both],
                               groups=["w/o ISA", "w/ ISA"]),
                 "Paired, per case:\n",
                 paired_table(result.rows, "sau-net", "dense-unet"),
                 "Without post-processing, paired per case:\n",
                 paired_table(result.raw_rows, "sau-net", "dense-unet")]
    text += ["## Figures\n"] + [f"![{f.stem}](figures/{f.name})\n" for f in figures]
    return write_text("\n".join(text), report_dir / "cv.md")


def _overlay_worst_case(result, cv_dir, data, report_dir, models) -> list[Path]:
    """The paper's Figure 4 for the case where the first model's Hausdorff distance is worst."""
    from saunet.imageio import read_volume
    from saunet.reports import overlay_figure, sagittal_view

    first = [r for r in result.rows if r["model"] == models[0]]
    worst = max(first, key=lambda r: r["hd"])
    case = next(c for c in list_cases(data) if c.name == worst["case"])
    image, label = read_case(case)
    predictions = {}
    for model in models:
        row = next((r for r in result.rows if r["model"] == model and r["case"] == worst["case"]), None)
        if row is None:  # this model's fold with the case has not finished yet
            continue
        pred_dir = cv_dir / model / f"fold_{row['fold']}" / "predictions"
        path = next(pred_dir.glob(f"{worst['case']}.*"))
        predictions[f"{model} (HD {row['hd']:.1f} mm)"] = sagittal_view(image, read_volume(path).array)
    return [overlay_figure(sagittal_view(image, image.array), sagittal_view(image, label.array), predictions,
                           report_dir / "figures" / f"cv_overlay_{worst['case']}.png",
                           title=f"{worst['case']}: worst Hausdorff distance of {models[0]}")]
