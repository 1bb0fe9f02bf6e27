"""Cross-validation: patient splits saved once and reused by every model; resumable folds."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from saunet.checkpoints import Checkpoint
from saunet.config import TrainConfig
from saunet.datasets import list_cases, read_case
from saunet.errors import InputError
from saunet.evaluation import level_map_metrics
from saunet.files import write_json, write_text
from saunet.imageio import output_suffix, write_like
from saunet.inference import Segmenter
from saunet.models import takes_argument
from saunet.training import train, typical_component_count

EVALUATION_FILE = "evaluation.json"
PREDICTIONS = "predictions"  # the folder of a fold's test predictions


def make_splits(case_names: list[str], folds: str | int, seed: int = 0, datasets: dict[str, str] | None = None) -> list[dict]:
    """Random patient splits: ``folds`` an int k (k-fold) or 'loo'. Each fold names its train, val and test
    cases; one training case per fold is held out for validation (checkpoint selection), never the test cases.
    With ``datasets`` (case -> data set) naming several sets, each set is split on its own and fold i joins the
    sets' fold i, so every fold tests every set (and validates on one case of each)."""
    sets = sorted(set((datasets or {}).values()))
    if len(sets) > 1:
        return _joined_splits(case_names, folds, seed, datasets, sets)
    names = sorted(case_names)
    rng = np.random.default_rng(seed)
    order = [str(n) for n in rng.permutation(names)]
    k = len(names) if folds == "loo" else int(folds)
    if not 2 <= k <= len(names):
        raise InputError("--folds", f"cannot make {k} folds from {len(names)} cases")
    tests = [sorted(str(n) for n in part) for part in np.array_split(order, k)]
    splits = []
    for i, test in enumerate(tests):
        rest = [n for n in order if n not in test]
        val = [rest[rng.integers(len(rest))]]
        splits.append({"fold": i, "train": sorted(n for n in rest if n not in val), "val": val, "test": test})
    return splits


def _joined_splits(case_names: list[str], folds: str | int, seed: int, datasets: dict[str, str],
                   sets: list[str]) -> list[dict]:
    per_set = [make_splits([n for n in case_names if datasets[n] == s], folds, seed) for s in sets]
    if len({len(splits) for splits in per_set}) > 1:  # loo over sets of different sizes
        raise InputError("--folds", "leave-one-out needs data sets of one size; give a number of folds")
    return [{"fold": i, **{part: sorted(n for splits in per_set for n in splits[i][part])
                           for part in ("train", "val", "test")}} for i in range(len(per_set[0]))]


def read_splits(path: Path, case_names: list[str]) -> list[dict]:
    """The folds of the splits file ``path``, each naming only cases of ``case_names``."""
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))["folds"]
        tested = {n for s in splits for n in s["test"] + s["train"] + s["val"]}
    except FileNotFoundError:
        raise InputError(path, "no such splits file") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable splits file ({type(err).__name__}: {err})") from None
    missing = tested - set(case_names)
    if missing:
        raise InputError(path, f"splits name cases the data set lacks: {sorted(missing)}")
    return splits


def load_or_make_splits(path: Path, case_names: list[str], folds: str | int, seed: int = 0,
                        datasets: dict[str, str] | None = None) -> list[dict]:
    """Read ``path`` when it exists (so every model uses the same folds), else make and write it."""
    if path.exists():
        return read_splits(path, case_names)
    splits = make_splits(case_names, folds, seed, datasets)
    write_text(json.dumps({"folds_arg": str(folds), "seed": seed, "folds": splits}, indent=1) + "\n", path)
    return splits


@dataclass
class CVResult:
    rows: list[dict]  # per case, fold and model, with post-processing (the pipeline)
    raw_rows: list[dict]  # the same without post-processing
    histories: dict[str, list[dict]]
    fold_count: int  # folds in the splits; fewer are reported when the run is unfinished
    trained_on: dict[str, str] = field(default_factory=dict)  # "model fold k": "cpu (threads: N)" or the GPU's name


def fold_finished(run_dir: Path, epochs: int) -> bool:
    return saved_evaluation(run_dir, epochs) is not None or training_finished(run_dir, epochs)


def training_finished(run_dir: Path, epochs: int) -> bool:
    last = run_dir / "checkpoint_last.pt"
    return last.exists() and Checkpoint.load(last).epoch >= epochs


def finished_folds(cv: Path, model: str, epochs: int, members: list[Path] = ()) -> list[tuple[dict, Path]]:
    """(split, run folder) of every fold of ``model`` in the CV folder ``cv`` whose training has finished there and
    in each CV folder of an ensemble's ``members``."""
    splits = json.loads((cv / "splits.json").read_text())["folds"]
    return [(split, cv / model / f"fold_{split['fold']}") for split in splits
            if all(training_finished(folder / model / f"fold_{split['fold']}", epochs) for folder in (cv, *members))]


def fold_checkpoints(run_dir: Path, members: list[Path] = ()) -> list[Path]:
    """The best checkpoint of the CV fold ``run_dir`` and, for an ensemble, that of the same model and fold in each
    further CV folder of ``members``, which must hold the same folds."""
    cv = run_dir.parent.parent
    folds = json.loads((cv / "splits.json").read_text())["folds"]
    for other in members:
        if json.loads((other / "splits.json").read_text())["folds"] != folds:
            raise InputError(other / "splits.json", f"not the folds of {cv}: its models cannot join an ensemble there")
    return [folder / run_dir.parent.name / run_dir.name / "checkpoint_best.pt" for folder in (cv, *members)]


def saved_prediction(cv: Path, model: str, case: str, fold: int | str = "*") -> Path | None:
    """The prediction a fold of ``model`` in the CV folder ``cv`` wrote for ``case`` (any fold by default), or None."""
    found = sorted(cv.glob(f"{model}/fold_{fold}/{PREDICTIONS}/{case}.*"))
    return found[0] if found else None


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


def run_cv(data: Path | list[Path], folds: str | int, models: list[str], out: Path, base: TrainConfig,
           seed: int = 0, progress: bool = True, finished_only: bool = False, workers: int = 1,
           only_folds: list[int] | None = None, start_from: Path | None = None) -> CVResult:
    """Train and test every model on the same folds; finished folds are not trained again.

    Args:
        data: the data-set folder, or several (split each on its own, trained on together with partial labels).
        folds: k for k-fold, or "loo"; ignored when ``out/splits.json`` exists (its folds are reused).
        models: model names, all trained and tested on the same folds.
        out: the CV folder: ``splits.json``, ``<model>/fold_<k>/`` (checkpoints, metrics.csv, predictions/,
            evaluation.json) and ``cases.json`` with the per-case metrics.
        base: the recipe; its model is replaced by each of ``models``.
        seed: the seed of new splits.
        progress: progress bars.
        finished_only: train nothing; test only the folds whose training has finished (a report on a run
            that is still going).
        workers: folds trained at once in separate processes, the CPU threads shared among them (on a small
            CPU two one-thread trainings outrun one two-thread training: reports/speed-ups.md).
        only_folds: train and test only these folds of the splits (one fold per machine, say); None: all.
        start_from: an earlier CV folder on the same splits: each fold not yet begun starts from that folder's
            last checkpoint of the same model and fold (:func:`start_folds_from`).

    Returns:
        :class:`CVResult` of the folds that have finished.
    """
    cases = gather_cases(data)
    if start_from is not None and not finished_only:
        adopt_splits(start_from, out, list(cases))
    splits = load_or_make_splits(out / "splits.json", list(cases), folds, seed, {n: c.dataset for n, c in cases.items()})
    configs = {model: replace(base, model=model, model_kwargs={k: v for k, v in base.model_kwargs.items()
                                                             if takes_argument(model, k)}) for model in models}
    chosen = [s for s in splits if only_folds is None or s["fold"] in only_folds]
    if not finished_only:
        if start_from is not None:
            start_folds_from(start_from, out, models, chosen)
        train_pending_folds(cases, chosen, configs, out, progress, workers)
    return replace(collect_results(cases, chosen, configs, out), fold_count=len(splits))


def adopt_splits(earlier: Path, out: Path, case_names: list[str]) -> None:
    """Make ``out`` use the CV folder ``earlier``'s splits: copied when ``out`` has none, refused when they differ."""
    source, target = earlier / "splits.json", out / "splits.json"
    if not source.exists():
        raise InputError(earlier, "no splits.json: not a CV folder")
    folds = load_or_make_splits(source, case_names, 0)
    if not target.exists():
        write_text(source.read_text(encoding="utf-8"), target)
    elif load_or_make_splits(target, case_names, 0) != folds:
        raise InputError(target, f"its folds differ from those of {source}")


def start_folds_from(earlier: Path, out: Path, models: list[str], splits: list[dict]) -> None:
    """Start each fold of ``models`` that has no checkpoint in ``out`` from ``earlier``'s last checkpoint of the
    same model and fold (both folders on the same splits: :func:`adopt_splits`): weights, optimiser state, epoch
    count and history, so that training continues (at a new spacing, patch or loss, say) where that run stopped;
    its best validation Dice is reset, as the validation may now be scored otherwise."""
    starts = [(earlier / model / f"fold_{split['fold']}" / "checkpoint_last.pt",
               out / model / f"fold_{split['fold']}" / "checkpoint_last.pt") for model in models for split in splits]
    starts = [(source, target) for source, target in starts if not target.exists()]
    missing = [source for source, _ in starts if not source.exists()]
    if missing:
        raise InputError(missing[0], "missing: nothing to start this fold from")
    for source, target in starts:
        record = Checkpoint.load(source)
        record.best_dice = Checkpoint.best_dice
        target.parent.mkdir(parents=True, exist_ok=True)
        record.save(target)


def gather_cases(data: Path | list[Path]) -> dict:
    """Every case of one or several data sets by name; a name two sets share is refused."""
    cases = {}
    for folder in [data] if isinstance(data, Path) else data:
        for case in list_cases(folder):
            if case.name in cases:
                raise InputError(folder, f"case {case.name} is also in {cases[case.name].dataset}: names must be unique")
            cases[case.name] = case
    return cases


def train_pending_folds(cases: dict, splits: list[dict], configs: dict[str, TrainConfig], out: Path,
                        progress: bool, workers: int) -> None:
    """Train (or resume) every fold whose training and evaluation have not finished."""
    jobs = [(config, [cases[n] for n in split["train"]], [cases[n] for n in split["val"]],
             out / model / f"fold_{split['fold']}") for model, config in configs.items() for split in splits
            if not fold_finished(out / model / f"fold_{split['fold']}", config.epochs)]
    if not jobs:
        return
    if workers <= 1:
        for config, train_cases, val_cases, run_dir in jobs:
            if progress:
                tqdm.write(f"{config.model} {run_dir.name}: training on {len(train_cases)} cases")
            train(config, train_cases, val_cases, run_dir, resume=True, progress=progress)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    threads = max(1, torch.get_num_threads() // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train_fold, *job, threads) for job in jobs]
        for future in futures:
            tqdm.write(f"finished {future.result()}")


def collect_results(cases: dict, splits: list[dict], configs: dict[str, TrainConfig], out: Path) -> CVResult:
    """Every finished fold's test results: read from its evaluation.json, or tested now and saved there."""
    rows, raw_rows, histories, trained_on = [], [], {}, {}
    max_components: dict[int, int] = {}  # per fold: every model's folds share their training masks
    for model, config in configs.items():
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

    last = Checkpoint.load(run_dir / "checkpoint_last.pt")
    segmenter = Segmenter(run_dir / "checkpoint_best.pt", device="cuda" if torch.cuda.is_available() else "cpu",
                          max_components=max_components)
    rows, raw_rows = [], []
    for case in test_cases:
        image, label = read_case(case)
        result = segmenter.segment(image, config.slice_axis)
        write_like(result.labels, image, run_dir / PREDICTIONS / f"{case.name}{output_suffix(image.path)}")
        about = {**key, "case": case.name, "dataset": case.dataset}
        rows.append({**about, **level_map_metrics(result.labels, label.array, image.spacing, config.label_map)})
        raw_rows.append({**about, **level_map_metrics(result.raw_labels, label.array, image.spacing, config.label_map)})
    saved = {"epochs": last.epoch, "trained_on": last.trained_on, "max_components": max_components,
             "history": last.history, "cases": rows, "cases_without_postprocessing": raw_rows}
    write_json(saved, run_dir / EVALUATION_FILE)
    return saved
