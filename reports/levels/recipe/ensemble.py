"""Ensembles of CV runs trained on the same folds (session 20): each fold's test scans segmented with the network
logits of several runs' best checkpoints averaged, decoded and post-processed as `saunet segment` does. One JSON of
per-case rows per ensemble, for compare.py. A one-run ensemble is that run as `saunet cv` scored it.

Each member's logits are computed once per scan and shared by every ensemble that holds it.

    python reports/levels/recipe/ensemble.py runs/both-base --folds 0 --data ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat --run seed0=runs/both-base --run seed1=runs/both-seed1 \
        --ensemble "seed 0=seed0" --ensemble "seeds 0+1=seed0+seed1" --out runs/ensemble-fold0
    python reports/levels/recipe/compare.py "seed 0=runs/ensemble-fold0/seed 0.json" \
        "seeds 0+1=runs/ensemble-fold0/seeds 0+1.json"
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.inference import Segmenter, averaged_in_place
from saunet.orientation import volume_layout


def pairs(values: list[str]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in values)


def runs_parser(description: str, run_help: str) -> argparse.ArgumentParser:
    """The arguments of a script that scores CV runs trained on the same folds: the CV folder whose splits they
    share, the folds, the data sets, the runs (NAME=...) and the output folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("cv", type=Path, help="CV folder whose splits.json the runs share")
    parser.add_argument("--folds", type=lambda text: [int(k) for k in text.split(",")], required=True)
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--run", action="append", required=True, help=run_help)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def main() -> None:
    parser = runs_parser(__doc__.splitlines()[0], "NAME=CV folder of a member")
    parser.add_argument("--ensemble", action="append", required=True, help="LABEL=NAME+NAME+...")
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    splits = json.loads((arguments.cv / "splits.json").read_text())["folds"]
    cases = gather_cases(arguments.data)
    runs, ensembles = pairs(arguments.run), {k: v.split("+") for k, v in pairs(arguments.ensemble).items()}
    rows = {label: [] for label in ensembles}
    for fold in arguments.folds:
        members = {name: Segmenter(Path(runs[name]) / "sau-net" / f"fold_{fold}" / "checkpoint_best.pt")
                   for name in dict.fromkeys(n for names in ensembles.values() for n in names)}
        for case in splits[fold]["test"]:
            image, label = read_case(cases[case])
            layout = volume_layout(image, next(iter(members.values())).slice_axis)
            logits = {}
            for name, segmenter in members.items():
                logits[name], grid, _ = segmenter.network_logits(image, layout)
            for ensemble, names in ensembles.items():
                segmenter = members[names[0]]
                mean = logits[names[0]].copy()
                averaged_in_place(mean, [logits[name] for name in names[1:]])
                labels = segmenter.label_map.values(segmenter.decode(mean, grid, image.spacing, image.array.shape)[0])
                rows[ensemble].append({"case": case, "dataset": cases[case].dataset, "fold": fold,
                                       **level_map_metrics(labels, label.array, label.spacing, segmenter.label_map)})
            print(case, file=sys.stderr, flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    for label, saved in rows.items():
        (arguments.out / f"{label}.json").write_text(json.dumps({"command": " ".join(sys.argv), "cases": saved}, indent=1))


if __name__ == "__main__":
    main()
