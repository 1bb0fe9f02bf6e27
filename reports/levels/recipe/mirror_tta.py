"""Test-time mirroring (session 18): each CV test scan segmented as `saunet segment` does, and with the network's
logits averaged over the scan and its left-right mirror image (the slice order reversed; training mirrors so too),
decoded and post-processed the same way. Per data set, the metrics of ``saunet cv`` and the paired per-case
differences. It doubles the network's time per scan. Each slice goes through the 2D network unchanged by the
mirror; only the order in which the inter-slice attention sees a slice's two neighbours differs, and on fold 0
that changed the labels by under 0.02 points (`mirror-tta-fold0.md`): not kept, not run on the other folds. The
binary lumbar-t2 model's probe had found the same (`reports/lumbar-t2/experiments/probes/threshold_and_mirror.py`:
Dice to 0.01 points); this repeats it for the level model and the current decode.

    python reports/levels/recipe/mirror_tta.py runs/both-base runs/both-base/sau-net/fold_0 \
        --data ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat > reports/levels/recipe/mirror-tta-fold0.md
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.experiments.reports import comparison_by_dataset
from saunet.inference import Segmenter
from saunet.labels import LabelMap
from saunet.orientation import volume_layout

METRICS = ("dice", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")
BEFORE, AFTER = "as segment does", "logits averaged with the mirror image's"


def mirrored_labels(segmenter: Segmenter, image) -> np.ndarray:
    """Labels from the mean of the logits of ``image`` and of its array reversed along the slice axis."""
    layout = volume_layout(image)
    logits, grid, _ = segmenter.network_logits(image, layout)
    original = image.array
    image.array = np.flip(original, layout.slice_axis).copy()
    try:
        mirror, _, _ = segmenter.network_logits(image, layout)
    finally:
        image.array = original
    mean = (logits + mirror[:, ::-1]) / 2  # canonical axis 0 is the slice axis: the mirror reverses it
    return segmenter.label_map.values(segmenter.decode(mean, grid, image.spacing, image.array.shape)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv", type=Path)
    parser.add_argument("runs", type=Path, nargs="+", help="fold folders (fold_K) of the CV folder")
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    arguments = parser.parse_args()
    folds = json.loads((arguments.cv / "splits.json").read_text())["folds"]
    cases = gather_cases(arguments.data)
    levels = LabelMap((1, 2, 3, 4, 5, 6, 7))
    rows = []
    for run in arguments.runs:
        segmenter = Segmenter(run / "checkpoint_best.pt")
        for name in folds[int(run.name.split("_")[1])]["test"]:
            image, label = read_case(cases[name])
            reference = levels.apply(label.array)
            for model, labels in ((BEFORE, segmenter.segment(image).labels), (AFTER, mirrored_labels(segmenter, image))):
                rows.append({"model": model, "case": name, "dataset": cases[name].dataset,
                             **level_map_metrics(labels, reference, label.array, label.spacing)})
            print(name, file=sys.stderr, flush=True)
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print(comparison_by_dataset(sorted(rows, key=lambda r: r["dataset"] != "lumbar-t2"), BEFORE, AFTER, METRICS))


if __name__ == "__main__":
    main()
