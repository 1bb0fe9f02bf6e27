"""Unpack ``train_gpu.py``'s tars into a saunet CV folder, to be tested there by ``saunet cv --finished-only``.

Each tar RECIPE-RUN.tar becomes CV/<model>/RUN/ (a CV fold ``fold_k``, or ``all``); weights that travelled in half
precision are made single precision again; the splits the folds were trained on are copied beside them.

    python reports/levels/gpu/unpack.py /path/to/g32-*.tar --cv runs/gpu-g32 --splits reports/levels/cv/splits.json
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import torch

from saunet.checkpoints import Checkpoint


def weights_as(checkpoint: Checkpoint, dtype) -> Checkpoint:
    """The checkpoint with its floating-point weights (inference's and training's) in ``dtype``: half precision
    for the journey back from the device (``train_gpu.slim_tar``), single again here."""
    def cast(state: dict | None) -> dict | None:
        return None if state is None else {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}

    return replace(checkpoint, state_dict=cast(checkpoint.state_dict),
                   training_state_dict=cast(checkpoint.training_state_dict))


def unpack(tar_path: Path, cv: Path) -> Path:
    """The run folder the tar became."""
    with tarfile.open(tar_path) as tar:
        run = tar.getnames()[0].split("/")[0]
        staging = cv / f".{run}"
        tar.extractall(staging, filter="data")
    checkpoint = Checkpoint.load(next((staging / run).glob("checkpoint_*.pt")))
    run_dir = cv / checkpoint.model / run
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    (staging / run).rename(run_dir)
    staging.rmdir()
    for path in run_dir.glob("checkpoint_*.pt"):
        weights_as(Checkpoint.load(path), torch.float32).save(path, with_optimizer=False)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tars", nargs="+", type=Path)
    parser.add_argument("--cv", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    args = parser.parse_args()
    args.cv.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.splits, args.cv / "splits.json")
    for tar_path in args.tars:
        print(f"{tar_path.name} -> {unpack(tar_path, args.cv)}")


if __name__ == "__main__":
    main()
