"""How close can a model on the 1.875 mm network grid come to the expert masks? Per scan of each data set, two
level maps scored as `saunet cv` scores (Dice, HD95, HD against the reference bodies; body-wise Dice):

- `round_trip`: the expert mask itself sent to the network grid as training sends labels (nearest neighbour) and
  back as inference sends logits (bilinear, then the most probable class): the best a network trained on those
  labels can draw, were it perfect on its own grid;
- `shipped_fit`: the shipped ensemble's first model set (no fallback) on the same scan, which it was trained on:
  how well the model fits its own training scans, not how it does on new ones. ``--model`` (repeatable: an
  ensemble) scores another model instead (its rows still named `shipped_fit`), e.g. a fold's checkpoint on that
  fold's training scans.

    python reports/levels/recipe/grid_ceiling.py --data ../shared/data/lumbar-t2 \
        --out reports/levels/recipe/grid-ceiling-lumbar-t2.json
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.inference import Segmenter
from saunet.labels import LabelMap
from saunet.orientation import volume_layout


def round_trip(segmenter: Segmenter, classes: np.ndarray, volume) -> np.ndarray:
    """Classes 0..K of a scan sent to the network grid (nearest) and back (bilinear logits, most probable class)."""
    pre = segmenter.preprocessor
    grid = pre.grid(classes.shape, volume.spacing, volume_layout(volume, segmenter.slice_axis))
    network = pre.label(classes, grid)
    logits = np.stack([np.where(network == k, 10.0, -10.0) for k in range(segmenter.label_map.out_channels + 1)])
    return LabelMap.network_classes(pre.inverse(logits.astype(np.float32), grid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--model", type=Path, action="append", help="model file(s) instead of the shipped ensemble")
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    segmenter = Segmenter(arguments.model, fallback=False)
    rows = []
    for name, case in gather_cases(arguments.data).items():
        image, label = read_case(case)
        classes = segmenter.label_map.apply(label.array)
        maps = {"round_trip": segmenter.label_map.values(round_trip(segmenter, classes, image)),
                "shipped_fit": segmenter.segment(image).labels}
        for kind, labels in maps.items():
            rows.append({"case": name, "dataset": case.dataset, "kind": kind,
                         **level_map_metrics(labels, classes, label.array, label.spacing)})
        print(name, {row["kind"]: round(row["dice"], 4) for row in rows[-2:]}, file=sys.stderr, flush=True)
    arguments.out.write_text(json.dumps({"command": " ".join(sys.argv), "cases": rows}, indent=1))
    for dataset in sorted({row["dataset"] for row in rows}):
        for kind in maps:
            mine = [row for row in rows if row["dataset"] == dataset and row["kind"] == kind]
            print(dataset, kind, {m: round(float(np.mean([row[m] for row in mine])), 4)
                                  for m in ("dice", "hd95", "hd", "body_dice", "bodies_named")})


if __name__ == "__main__":
    main()
