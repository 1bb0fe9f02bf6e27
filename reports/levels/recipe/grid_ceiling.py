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

Prints a table per data set; ``--rows JSON`` prints it again from saved rows, no model run.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.experiments.reports import metrics_table, saved_cases
from saunet.inference import Segmenter
from saunet.labels import LabelMap
from saunet.orientation import volume_layout

METRICS = ("dice", "precision", "recall", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")


def round_trip(segmenter: Segmenter, classes: np.ndarray, volume) -> np.ndarray:
    """Classes 0..K of a scan sent to the network grid (nearest) and back (bilinear logits, most probable class)."""
    pre = segmenter.preprocessor
    grid = pre.grid(classes.shape, volume.spacing, volume_layout(volume, segmenter.slice_axis))
    network = pre.label(classes, grid)
    logits = np.stack([np.where(network == k, 10.0, -10.0) for k in range(segmenter.label_map.out_channels + 1)])
    return LabelMap.network_classes(pre.inverse(logits.astype(np.float32), grid))


def scored_rows(data: list[Path], models: list[Path] | None) -> list[dict]:
    """Both level maps of every scan in ``data``, scored (the shipped ensemble's fit, or ``models``')."""
    segmenter = Segmenter(models, fallback=False)
    rows = []
    for name, case in gather_cases(data).items():
        image, label = read_case(case)
        classes = segmenter.label_map.apply(label.array)
        maps = {"round_trip": segmenter.label_map.values(round_trip(segmenter, classes, image)),
                "shipped_fit": segmenter.segment(image).labels}
        for kind, labels in maps.items():
            rows.append({"case": name, "dataset": case.dataset, "kind": kind,
                         **level_map_metrics(labels, label.array, label.spacing, segmenter.label_map)})
        print(name, {row["kind"]: round(row["dice"], 4) for row in rows[-2:]}, file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+")
    parser.add_argument("--model", type=Path, action="append", help="model file(s) instead of the shipped ensemble")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rows", type=Path, help="a saved --out file: print its tables, run nothing")
    arguments = parser.parse_args()
    if arguments.rows:
        rows = saved_cases(arguments.rows)
    elif arguments.data and arguments.out:
        rows = scored_rows(arguments.data, arguments.model)
        arguments.out.write_text(json.dumps({"command": " ".join(sys.argv), "cases": rows}, indent=1))
    else:
        parser.error("give --data and --out, or --rows")
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        print(f"### {dataset}\n\n{metrics_table([r for r in rows if r['dataset'] == dataset], 'kind', metrics=METRICS)}\n")


if __name__ == "__main__":
    main()
