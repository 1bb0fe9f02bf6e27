"""Train several saunet runs at once on one lent GPU, from the data ``pack.py`` prepared, within a time budget.

Each (recipe, run) pair is one process: a CV fold (``fold_k``: that fold's training and validation scans) or
``all`` (every scan but the shipped model's validation scan). The processes first time a few training steps
side by side; each recipe's epochs are then chosen so its slowest run ends inside the budget, the models start
again from their seed, and every run trains with saunet's own steps (``saunet.training``), writing saunet
checkpoints. At the end each run's checkpoints and metrics go into a tar under OUT (``slim_tar``), to be
unpacked into a CV folder at home by ``unpack.py`` and tested there by ``saunet cv --finished-only``.

    python reports/levels/gpu/train_gpu.py --packed .gpu --budget 420 --out $OUT --recipe gpu:batch_size=16 ...

A recipe is NAME:field=value,...: TrainConfig fields over the shipped recipe's (sau-net, batch Dice + CE,
learning rate 1e-3, classes 1-7). Its epochs are as many as fit the budget, or ``epochs=N`` where N fit (a
recipe repeated as it is trained on the CPU: its learning rate decays over N epochs). The machine lacks
SimpleITK and MONAI; the steps used here need neither, so both are stand-ins that fail if called.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import multiprocessing
import re
import sys
import tarfile
import threading
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np

CALIBRATION_STEPS = 12
SHIPPED_RECIPE = dict(model="sau-net", loss="batch-dice-bce", lr=1e-3, seed=0)


def stand_in_modules() -> None:
    """Modules the training path imports but never calls, where they are not installed."""
    for package, submodules in (("SimpleITK", ()), ("monai", ("metrics", "metrics.utils"))):
        try:
            __import__(package)
        except ImportError:
            for name in (package, *(f"{package}.{sub}" for sub in submodules)):
                module = types.ModuleType(name)
                module.__path__ = []
                module.__getattr__ = lambda attribute, name=name: _missing(f"{name}.{attribute}")
                sys.modules[name] = module


def _missing(what: str):
    if what.rpartition(".")[2].startswith("__"):  # what inspection asks of any module (__file__, ...)
        raise AttributeError(what)
    if what == "SimpleITK.ProcessObject_SetGlobalWarningDisplay":  # called on import of saunet.imageio
        return lambda *_: None

    def fail(*_, **__):
        raise RuntimeError(f"{what} is not installed on this machine")
    return fail


def parse_recipe(text: str) -> tuple[str, dict]:
    name, _, fields = text.partition(":")
    values = {}
    for item in filter(None, re.split(r",(?=\w+=)", fields)):  # a value may be JSON with commas in it
        key, _, value = item.partition("=")
        values[key] = json.loads(value)
    return name, values


def load_cases(packed: Path) -> dict:
    """Case name -> PreparedCase, the 8-bit images mapped back to their intensity range."""
    from saunet.training import PreparedCase

    arrays = np.load(io.BytesIO(lzma.decompress((packed / "cases.npz.xz").read_bytes())))
    cases = {}
    for name in sorted({key.split("/")[0] for key in arrays.files}):
        low, high, components, slice_mm = arrays[f"{name}/about"]
        image = (arrays[f"{name}/image"].astype(np.float32) / 255 * (high - low) + low).astype(np.float32)
        unannotated = arrays[f"{name}/unannotated"] if f"{name}/unannotated" in arrays.files else None
        cases[name] = PreparedCase(name, image, arrays[f"{name}/label"], int(components), None,
                                   arrays[f"{name}/known"], str(arrays[f"{name}/dataset"]), float(slice_mm), unannotated)
    return cases


def start_run(config, run: dict, cases: dict, out_dir: Path):
    """A fresh TrainingRun (model, optimiser, checkpoint record) of ``config`` on the run's cases."""
    import torch

    from saunet.models import create, full_arguments
    from saunet.quality import TrainingProfile
    from saunet.training import TrainingRun, new_record, training_form

    torch.manual_seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model_kwargs = full_arguments(config.model, out_channels=config.label_map.network_channels, **config.model_kwargs)
    model = training_form(create(config.model, **model_kwargs).to(device), config.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    train_data, val_data = [cases[n] for n in run["train"]], [cases[n] for n in run["val"]]
    record = new_record(config, model_kwargs, train_data, device, TrainingProfile.from_dict(run["profile"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    return TrainingRun(config, out_dir, train_data, val_data, model, model, optimizer, record, device, progress=False)


def seconds_per_epoch(run) -> float:
    """An epoch's seconds, timed on a few steps, a validation and a checkpoint beside the other runs."""
    from saunet.training import save_epoch, train_epoch, validate

    calibration = replace(run.config, steps_per_epoch=CALIBRATION_STEPS, epochs=10**6)
    train_epoch(replace(run, config=calibration), 0)  # warm-up: cuDNN's choices, allocator
    started = time.time()
    losses = train_epoch(replace(run, config=calibration), 1)
    step = (time.time() - started) / CALIBRATION_STEPS
    started = time.time()
    save_epoch(run, 0, losses, 0.0, validate(run))
    return step * run.config.steps_per_epoch + time.time() - started


def side_by_side(barrier, deadline: float) -> bool:
    """Wait for every run at ``barrier`` (a quarter of the time left at most); False if some run never came."""
    try:
        barrier.wait(timeout=max(10.0, deadline - time.time()) / 4)
        return True
    except threading.BrokenBarrierError:
        return False


def timed_setup(index: int, job: dict, timings, loaded, deadline: float):
    """The run's recipe and cases, and its epoch's seconds written to ``timings[index]``, timed once every run has
    loaded its cases (``loaded``): timed while others still decompress theirs, an epoch took about twice as long as in
    training (session 35), and the budget gave fewer epochs than fit."""
    import torch

    from saunet.config import TrainConfig

    torch.set_num_threads(job["threads"])
    torch.backends.cudnn.benchmark = True
    cases = load_cases(Path(job["packed"]))
    config = TrainConfig(**{**SHIPPED_RECIPE, "classes": tuple(job["classes"]), **job["fields"]})
    if config.unannotated_anywhere:  # as prepare_cases: no region
        cases = {name: replace(case, unannotated=None) for name, case in cases.items()}
    out_dir = Path(job["work"]) / job["recipe"] / job["run"]
    run = start_run(config, job["run_cases"], cases, out_dir)
    side_by_side(loaded, deadline)
    timings[index] = seconds_per_epoch(run)
    return config, cases, out_dir


def worker(index: int, job: dict, timings, loaded, barrier, deadline: float) -> None:
    stand_in_modules()
    from saunet.training import save_epoch, train_epoch, validate

    name = f"{job['recipe']} {job['run']}"
    try:
        config, cases, out_dir = timed_setup(index, job, timings, loaded, deadline)
    except BaseException:
        loaded.abort()  # the other runs go on with their own timings instead of waiting for this one
        barrier.abort()
        raise
    if not side_by_side(barrier, deadline):
        print(f"{name}: not every run timed its steps; going by the runs that did", flush=True)
    slowest = max(timings[i] for i in job["same_recipe"])
    fitting = max(1, int((deadline - time.time()) / slowest))
    config = replace(config, epochs=min(fitting, job["fields"].get("epochs", fitting)))
    run = start_run(config, job["run_cases"], cases, out_dir)
    print(f"{name}: {slowest:.2f} s/epoch -> {config.epochs} epochs of {config.steps_per_epoch} steps "
          f"({fitting} would fit)", flush=True)
    for epoch in range(config.epochs):
        if time.time() > deadline + 40:  # a run misjudged: stop unfinished rather than lose every run's files
            print(f"{name}: stopped after {epoch} epochs", flush=True)
            break
        started = time.time()
        losses = train_epoch(run, epoch)
        save_epoch(run, epoch, losses, time.time() - started, validate(run))
    print(f"{name}: done, best validation Dice {run.checkpoint.best_dice:.4f}", flush=True)


def slim_tar(run_dir: Path, tar_path: Path) -> None:
    """The run's checkpoints without optimiser state, and its metrics, in one tar, small enough for what comes
    back from the device (16 MiB a file, 64 MiB in all). A run on every scan brings its last checkpoint whole (the
    one a shipped model is). A CV fold brings its best checkpoint (the one ``saunet cv`` tests) with its weights in
    half precision (``unpack.py`` makes them single again) and its last as a record without weights: how far
    training got, which is what ``saunet cv --finished-only`` reads of it."""
    import torch
    from unpack import weights_as  # beside this script

    from saunet.checkpoints import Checkpoint

    def add(checkpoint: Checkpoint, name: str) -> None:
        checkpoint.save(run_dir / f"slim_{name}", with_optimizer=False)
        tar.add(run_dir / f"slim_{name}", arcname=f"{run_dir.name}/{name}")

    with tarfile.open(tar_path, "w") as tar:
        last = run_dir / "checkpoint_last.pt"
        if run_dir.name == "all" and last.exists():
            add(Checkpoint.load(last), "checkpoint_last.pt")
        elif last.exists():
            best = Checkpoint.load(run_dir / "checkpoint_best.pt")
            add(weights_as(best, torch.float16), "checkpoint_best.pt")
            add(replace(Checkpoint.load(last), state_dict=None, training_state_dict=None), "checkpoint_last.pt")
        tar.add(run_dir / "metrics.csv", arcname=f"{run_dir.name}/metrics.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packed", type=Path, required=True)
    parser.add_argument("--recipe", action="append", required=True, help="NAME:field=value,...")
    parser.add_argument("--runs", default="fold_0,fold_1,fold_2,all")
    parser.add_argument("--budget", type=float, required=True, help="seconds of training, calibration included")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/saunet-gpu"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    deadline = time.time() + args.budget
    packed = json.loads((args.packed / "runs.json").read_text())
    recipes = dict(parse_recipe(text) for text in args.recipe)
    names = [(recipe, run) for recipe in recipes for run in args.runs.split(",")]
    jobs = [{"recipe": recipe, "run": run, "fields": recipes[recipe], "run_cases": packed["runs"][run],
             "classes": packed["classes"], "packed": str(args.packed), "work": str(args.work), "threads": args.threads,
             "same_recipe": [i for i, (other, _) in enumerate(names) if other == recipe]} for recipe, run in names]
    context = multiprocessing.get_context("spawn")
    timings, loaded, barrier = context.Array("d", len(jobs)), context.Barrier(len(jobs)), context.Barrier(len(jobs))
    processes = [context.Process(target=worker, args=(i, job, timings, loaded, barrier, deadline))
                 for i, job in enumerate(jobs)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=max(1.0, deadline + 90 - time.time()))
        if process.is_alive():  # whatever it saved so far still comes back
            process.terminate()
            process.join()
    stand_in_modules()
    args.out.mkdir(parents=True, exist_ok=True)
    for recipe, run in names:
        run_dir = args.work / recipe / run
        if (run_dir / "metrics.csv").exists():
            slim_tar(run_dir, args.out / f"{recipe}-{run}.tar")
    print("exit codes:", [process.exitcode for process in processes])


if __name__ == "__main__":
    main()
