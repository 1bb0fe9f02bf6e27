"""CV runs trained on the same folds, scored on their test scans as they are and in contrasts no training scan has
(intensity-inverted and T1-like, as quality control's calibration makes them) and at ~4 mm slices: how far a
training lever carries a model beyond its training contrasts. One JSON of per-case rows per run and variant, for
compare.py. A run may be an ensemble of CV folders (NAME=A+B).

    python reports/levels/recipe/contrasts.py runs/both-base --folds 0 --data ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat --run seed0=runs/both-base --run appearance=runs/both-appearance \
        --variants original inverted T1-like --out runs/contrasts-fold0
"""

import json
import sys
from pathlib import Path

import torch
from ensemble import runs_parser  # this folder's

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.experiments.thick_slices import VARIANTS, scan_variant
from saunet.inference import Segmenter


def main() -> None:
    parser = runs_parser(__doc__.splitlines()[0], "NAME=CV folder, or NAME=A+B for an ensemble")
    parser.add_argument("--variants", nargs="+", default=["original", "inverted", "T1-like"], choices=VARIANTS)
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    splits = json.loads((arguments.cv / "splits.json").read_text())["folds"]
    cases = gather_cases(arguments.data)
    runs = {name: folders.split("+") for name, folders in (run.split("=", 1) for run in arguments.run)}
    rows = {(name, kind): [] for name in runs for kind in arguments.variants}
    for fold in arguments.folds:
        segmenters = {name: Segmenter([Path(f) / "sau-net" / f"fold_{fold}" / "checkpoint_best.pt" for f in folders])
                      for name, folders in runs.items()}
        for case in splits[fold]["test"]:
            for kind in arguments.variants:
                image, label = scan_variant(*read_case(cases[case]), kind)
                for name, segmenter in segmenters.items():
                    labels = segmenter.segment(image).labels
                    rows[name, kind].append({"case": case, "dataset": cases[case].dataset, "fold": fold,
                                             **level_map_metrics(labels, label.array, label.spacing,
                                                                 segmenter.label_map)})
                print(case, kind, {name: round(rows[name, kind][-1]["body_dice"], 3) for name in runs},
                      file=sys.stderr, flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    for (name, kind), saved in rows.items():
        (arguments.out / f"{name}-{kind}.json").write_text(json.dumps({"command": " ".join(sys.argv), "cases": saved},
                                                                      indent=1))


if __name__ == "__main__":
    main()
