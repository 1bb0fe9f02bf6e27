"""Which voxels are vertebral body: the most probable of background and the seven levels (the decode in use),
against "background below one half" (the levels' probabilities summed, then the most probable level), on a CV
folder's test scans, each segmented once by its fold's best checkpoint and decoded both ways. Where a voxel's
probability is split between two levels (at the discs, between T11 and T12) the first rule can call it
background although the model gives it more than one half of being some body. Per data set, the metrics of
``saunet cv`` and the paired per-case differences.

    python reports/levels/recipe/decode_rule.py runs/cv-finetune ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat > reports/levels/recipe/decode-rule-finetune.md
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
from saunet.labels import LabelMap
from saunet.orientation import volume_layout
from saunet.postprocessing import postprocess

METRICS = ("dice", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")
ARGMAX, SUMMED = "most probable class", "background below 1/2"


class SummedLevels(LabelMap):
    @staticmethod
    def decode(probabilities: np.ndarray) -> np.ndarray:
        body = probabilities.sum(0) > 0.5
        return np.where(body, probabilities.argmax(0) + 1, 0).astype(np.uint8)


def decoded_both_ways(segmenter: Segmenter, image) -> dict[str, np.ndarray]:
    """Post-processed label maps of ``image`` by either rule, from the probabilities resampled over the whole
    grid (the pipeline of session 11, when this was measured)."""
    layout = volume_layout(image, segmenter.slice_axis)
    logits, grid, _ = segmenter.network_logits(image, layout)
    probabilities = segmenter.preprocessor.inverse(segmenter.label_map.probabilities(logits), grid)
    return {rule: label_map.values(postprocess(label_map.decode(probabilities), image.spacing,
                                               segmenter.postprocessing, probabilities, layout.superior))
            for rule, label_map in ((ARGMAX, LabelMap(segmenter.label_map.classes)),
                                    (SUMMED, SummedLevels(segmenter.label_map.classes)))}


cv, *data = (Path(a) for a in sys.argv[1:])
cases = gather_cases(data)
rows = []
for split in json.loads((cv / "splits.json").read_text())["folds"]:
    run = cv / "sau-net" / f"fold_{split['fold']}"
    segmenter = Segmenter(run / "checkpoint_best.pt")
    for name in split["test"]:
        image, label = read_case(cases[name])
        reference = segmenter.label_map.apply(label.array)
        for rule, labels in decoded_both_ways(segmenter, image).items():
            rows.append({"model": rule, "case": name, "dataset": cases[name].dataset,
                         **level_map_metrics(labels, reference, label.array, label.spacing)})
        print(name, {k: round(v, 4) for k, v in rows[-1].items() if k in METRICS},
              {k: round(v, 4) for k, v in rows[-2].items() if k in METRICS}, file=sys.stderr, flush=True)
print(f"Command: `python {' '.join(sys.argv)}`\n")
print(comparison_by_dataset(rows, ARGMAX, SUMMED, METRICS))
