"""The refiner deciding on its body logit plus W times the level network's (session 29), against the refiner alone,
on a fold's test scans segmented by a fold model:

    python reports/levels/refine/coarse_evidence.py runs/fine-zoom2/sau-net/fold_0/checkpoint_best.pt \
        runs/refine-cli/fold_0/refiner.onnx reports/levels/cv60-prior/splits.json 0 runs/coarse-evidence/fine-zoom2 \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat

The level network's body logit is that of its levels' summed probability on the scan's grid (the segmenter's box).
Writes OUT/evaluation-W.json for W = 0 (the shipped decision, recomputed here), 0.5 and 1.
"""

import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.inference import Segmenter
from saunet.refinement import RADIUS, anchored, body_logits, in_plane_dilation, nearest_levels
from saunet.refiner_training import BODY_VALUES

WEIGHTS = (0.0, 0.5, 1.0)


def redrawn(segmenter, result, image) -> dict[float, np.ndarray]:
    """The result's unrefined map refined with each weight of the level network's body logit."""
    layout, box = result.layout, result.box
    body = np.clip(result.box_probabilities.sum(0), 1e-6, 1 - 1e-6)
    coarse = layout.to_canonical(np.log(body) - np.log1p(-body))
    seen = result.intensities  # the scan as the refiner sees it
    levels = layout.to_canonical(result.unrefined_labels[box])
    region = in_plane_dilation(levels > 0, RADIUS)
    own = body_logits(segmenter.refiner, layout.to_canonical(seen[box]), region, layout.spacing(image.spacing)[1:])
    maps = {}
    for weight in WEIGHTS:
        labels = result.unrefined_labels.copy()
        labels[box] = layout.from_canonical(anchored(nearest_levels(levels, region & (own + weight * coarse > 0)), levels))
        maps[weight] = labels
    return maps


def main(checkpoint: Path, refiner: Path, splits: Path, fold: int, out: Path, data: list[Path]) -> None:
    cases, rows = gather_cases(data), {w: [] for w in WEIGHTS}
    segmenter = Segmenter(checkpoint, refine=refiner)
    for name in json.loads(splits.read_text())["folds"][fold]["test"]:
        image, label = read_case(cases[name])
        result = segmenter.segment(image)
        reference = np.where(np.isin(label.array, BODY_VALUES), label.array, 0)
        maps = redrawn(segmenter, result, image)
        assert np.array_equal(maps[0.0], result.labels), name  # W = 0 is the shipped decision
        for weight, labels in maps.items():
            rows[weight].append({"fold": fold, "case": name, "dataset": cases[name].dataset,
                                 **level_map_metrics(labels, reference, label.array, image.spacing)})
        print(name, *(f"W={w} {rows[w][-1]['dice']:.4f}/{rows[w][-1]['body_dice']:.4f}" for w in WEIGHTS), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    for weight in WEIGHTS:
        (out / f"evaluation-{weight}.json").write_text(json.dumps({"cases": rows[weight]}, indent=1))


if __name__ == "__main__":
    checkpoint, refiner, splits, fold, out, *data = sys.argv[1:]
    main(Path(checkpoint), Path(refiner), Path(splits), int(fold), Path(out), [Path(p) for p in data])
