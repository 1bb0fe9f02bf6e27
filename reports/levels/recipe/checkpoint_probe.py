"""Does a fold model's validation Dice, which swings by points from epoch to epoch late in a run, say anything of
its test scans? A fold's best checkpoint (by validation Dice), its last, and the best with BatchNorm's running
statistics recomputed over training batches (cumulative average, no augmentation), each on the fold's test scans.

    python reports/levels/recipe/checkpoint_probe.py runs/both-base/sau-net/fold_0 runs/both-base/splits.json \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat > reports/levels/recipe/checkpoint-probe-fold0.md
"""

import json
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from saunet.checkpoints import Checkpoint
from saunet.config import TrainConfig
from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import body_metrics, case_metrics
from saunet.experiments.reports import metrics_table
from saunet.inference import Segmenter
from saunet.training import prepare_cases, sample_batch

BATCHES = 200
METRICS = ["dice", "hd95", "hd", "body_dice", "bodies_named"]


def recipe(checkpoint: Checkpoint) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    stored = {k: v for k, v in checkpoint.config.items() if k in names}
    return TrainConfig(**{**stored, "classes": tuple(stored["classes"]) if stored.get("classes") else None})


def recomputed_batchnorm(checkpoint: Checkpoint, train_cases: list, out: Path) -> Path:
    """The checkpoint with its BatchNorm statistics averaged over BATCHES training batches, saved to ``out``."""
    config = recipe(checkpoint)
    model = checkpoint.build_model()
    data = prepare_cases(train_cases, config, progress=False)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    model.train()
    rng = np.random.default_rng(123)
    with torch.no_grad():
        for _ in range(BATCHES):
            model(sample_batch(data, config, rng)[0])
    checkpoint.state_dict = model.state_dict()
    return checkpoint.save(out, with_optimizer=False)


def main(run: Path, splits: Path, data: list[Path]) -> None:
    split = json.loads(splits.read_text())["folds"][int(run.name.split("_")[1])]
    cases = gather_cases(data)
    best = Checkpoint.load(run / "checkpoint_best.pt")
    recomputed = recomputed_batchnorm(best, [cases[c] for c in split["train"]], run / "checkpoint_best_bn.pt")
    models = {"best": run / "checkpoint_best.pt", "last": run / "checkpoint_last.pt", "best, BatchNorm recomputed": recomputed}
    rows = []
    for label, path in models.items():
        segmenter = Segmenter(path)
        for name in split["test"]:
            image, label_volume = read_case(cases[name])
            labels = segmenter.segment(image).labels
            reference = label_volume.array
            rows.append({"model": label, "dataset": cases[name].dataset,
                         **case_metrics(labels > 0, reference > 0, image.spacing), **body_metrics(labels, reference)})
    print(f"Validation Dice: best {best.best_dice:.4f} (epoch {best.epoch}), last "
          f"{Checkpoint.load(run / 'checkpoint_last.pt').history[-1]['val_dice']:.4f}\n")
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        print(f"### {dataset}\n\n{metrics_table([r for r in rows if r['dataset'] == dataset], 'model', list(models), METRICS)}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
