"""Segment the water-fat test scans of a CV fold from their acquired slices only (every 4th stored slice, the
rest being linear interpolations, `slices.py`), the network's logits interpolated linearly across slices onto the
stored grid and decoded as `saunet segment` decodes, against the usual segmentation of every stored slice.

    python reports/levels/water-fat-slices/acquired_only.py runs/both-base/sau-net/fold_0 runs/both-base/splits.json
"""

import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import body_metrics
from saunet.experiments.thick_slices import thinned
from saunet.inference import Segmenter
from saunet.orientation import volume_layout

STEP = 4
DATA = Path("../shared/data/lumbar-water-fat")


def across_slices(logits: np.ndarray, stored: int) -> np.ndarray:
    """(C, D, H, W) logits of every STEP-th slice, interpolated linearly onto ``stored`` slices."""
    position = np.arange(stored) / STEP
    low = np.minimum(np.floor(position).astype(int), logits.shape[1] - 2)
    t = (position - low)[None, :, None, None]
    return ((1 - t) * logits[:, low] + t * logits[:, low + 1]).astype(np.float32)


def acquired_only(segmenter: Segmenter, image) -> np.ndarray:
    layout = volume_layout(image)
    logits, _, _ = segmenter.network_logits(thinned(image, layout.slice_axis, STEP), layout)
    grid = segmenter.preprocessor.grid(image.array.shape, image.spacing, layout)
    full = across_slices(logits, image.array.shape[layout.slice_axis])
    return segmenter.label_map.values(segmenter.decode(full, grid, image.spacing, image.array.shape)[0])


def main(run: Path, splits: Path) -> None:
    test = json.loads(splits.read_text())["folds"][int(run.name.split("_")[1])]["test"]
    cases = gather_cases([DATA])
    segmenter = Segmenter(run / "checkpoint_best.pt")
    rows = []
    for name in (n for n in test if n in cases):
        image, label = read_case(cases[name])
        every, acquired = (body_metrics(labels, label.array)
                           for labels in (segmenter.segment(image).labels, acquired_only(segmenter, image)))
        rows.append([every["body_dice"], acquired["body_dice"], every["bodies_named"], acquired["bodies_named"]])
        print(name, " ".join(f"{100 * v:.1f}" for v in rows[-1]), flush=True)
    r = 100 * np.array(rows)
    print(f"{len(r)} scans: body-wise Dice every slice {r[:, 0].mean():.2f} %, acquired slices only {r[:, 1].mean():.2f} % "
          f"({int((r[:, 1] > r[:, 0]).sum())} better); named {r[:, 2].mean():.1f} % and {r[:, 3].mean():.1f} %")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
