"""Does a body need less evidence than the decode asks for? Every CV test scan segmented by its fold's model (or an
ensemble of CV folders on the same folds, later members on the first one's body box as `saunet segment` runs them)
with the background logit lowered by each OFFSET before the one decode (0: as shipped), scored as `saunet cv`
scores. The CV predictions under-segment (volumes below the expert masks', `../../qc/`), which a lower bar for the
bodies would move. One JSON of per-case rows per offset, for compare.py.

    python reports/levels/recipe/decision_bias.py runs/both-curves-seed1 --data ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat --offsets 0 0.5 1 2 --out runs/bias-curves-seed1
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from saunet.crossval import fold_checkpoints, gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.inference import Segmenter
from saunet.orientation import volume_layout


def lowered_background(logits, offset: float):
    """The logits (channels, ...) with the background channel's lowered by ``offset`` (a copy)."""
    shifted = logits.copy()
    shifted[0] -= offset
    return shifted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv", type=Path)
    parser.add_argument("--member", action="append", default=[], type=Path, help="a further CV folder (ensemble)")
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--offsets", type=float, nargs="+", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    splits = json.loads((arguments.cv / "splits.json").read_text())["folds"]
    cases = gather_cases(arguments.data)
    rows = {offset: [] for offset in arguments.offsets}
    for fold, split in enumerate(splits):
        segmenter = Segmenter(fold_checkpoints(arguments.cv / "sau-net" / f"fold_{fold}", arguments.member))
        for case in split["test"]:
            image, label = read_case(cases[case])
            reference = segmenter.label_map.apply(label.array)
            logits, grid, _ = segmenter.network_logits(image, volume_layout(image, segmenter.slice_axis))
            for offset, saved in rows.items():
                decoded = segmenter.decode(lowered_background(logits, offset), grid, image.spacing, image.array.shape)
                labels = segmenter.label_map.values(decoded[0])
                saved.append({"case": case, "dataset": cases[case].dataset, "fold": fold,
                              **level_map_metrics(labels, reference, label.array, label.spacing)})
            print(case, {offset: round(saved[-1]["body_dice"], 4) for offset, saved in rows.items()},
                  file=sys.stderr, flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    for offset, saved in rows.items():
        (arguments.out / f"offset-{offset:g}.json").write_text(
            json.dumps({"command": " ".join(sys.argv), "cases": saved}, indent=1))


if __name__ == "__main__":
    main()
