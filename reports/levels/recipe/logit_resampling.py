"""Resampling the network's probabilities to the scan's grid and taking the most probable class (the decode up to
session 11) against resampling its logits (background and the seven levels) and decoding their softmax there,
as nnU-Net v2 resamples logits (the decode since session 12). Bilinear interpolation of saturated probabilities
puts a boundary half-way between two network pixels whatever the network's certainty; interpolated logits place it
where they cross.
On a CV folder's test scans, each segmented once by its fold's best checkpoint and decoded both ways; both
maps then get the same post-processing (with their own probabilities). Per data set, the metrics of ``saunet
cv`` and the paired per-case differences.

    python reports/levels/recipe/logit_resampling.py runs/cv-finetune ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat > reports/levels/recipe/logit-resampling-finetune.md
"""

import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.experiments.reports import comparison_by_dataset
from saunet.inference import Segmenter
from saunet.orientation import volume_layout
from saunet.postprocessing import postprocess

METRICS = ("dice", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")
PROBABILITIES, LOGITS = "probabilities resampled", "logits resampled"


def decoded_both_ways(segmenter: Segmenter, image) -> dict[str, np.ndarray]:
    """Post-processed label maps of ``image``: probabilities resampled (over the whole grid, as session 11's
    pipeline did inside its foreground box), and the segmenter's own decode, which resamples logits."""
    layout = volume_layout(image, segmenter.slice_axis)
    logits, grid, _ = segmenter.network_logits(image, layout)
    probabilities = segmenter.preprocessor.inverse(segmenter.label_map.probabilities(logits), grid)
    maps = {PROBABILITIES: postprocess(segmenter.label_map.decode(probabilities), image.spacing,
                                      segmenter.postprocessing, probabilities, layout.superior),
            LOGITS: segmenter.decode(logits, grid, image.spacing, image.array.shape)[0]}
    return {rule: segmenter.label_map.values(labels) for rule, labels in maps.items()}


cv, *data = (Path(a) for a in sys.argv[1:])
cases = gather_cases(data)
rows = []
for split in json.loads((cv / "splits.json").read_text())["folds"]:
    segmenter = Segmenter(cv / "sau-net" / f"fold_{split['fold']}" / "checkpoint_best.pt")
    for name in split["test"]:
        image, label = read_case(cases[name])
        for rule, labels in decoded_both_ways(segmenter, image).items():
            rows.append({"model": rule, "case": name, "dataset": cases[name].dataset,
                         **level_map_metrics(labels, label.array, label.spacing, segmenter.label_map)})
        print(name, *({k: round(row[k], 4) for k in METRICS} for row in rows[-2:]), file=sys.stderr, flush=True)
print(f"Command: `python {' '.join(sys.argv)}`\n")
print(comparison_by_dataset(rows, PROBABILITIES, LOGITS, METRICS))
