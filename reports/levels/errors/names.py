"""Which bodies a CV's level maps name wrong, and what the level network voted there: for each scan with a body
named wrong, per expert body the name the map gives most of it and the share of the network's own per-voxel votes
(its labels before post-processing, no refiner) for each level inside it; the same in the band under the expert's
lowest body (the sacrum in both sets); whether the field of view cuts the topmost body; one figure of the scans'
middle slices (expert and map).

    python reports/levels/errors/names.py reports/levels/refine/three-folds-trim/trimmed.json reports/levels/errors/names \
        --fold 1=runs/cv-s0-f1/sau-net/fold_1/checkpoint_best.pt:runs/retrim/f1/predictions \
        --fold 2=runs/cv-s0-f2/sau-net/fold_2/checkpoint_best.pt:runs/retrim/f2/predictions \
        --data ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat

``--fold K=CHECKPOINT:PREDICTIONS`` for each fold whose scans have a wrong name: the level model the maps were made
with and the folder of the maps the evaluation file scored.
"""

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np

from saunet.crossval import gather_cases
from saunet.experiments.reports import markdown_table
from saunet.imageio import read_volume
from saunet.inference import Segmenter
from saunet.labels import LEVELS
from saunet.orientation import volume_layout

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BELOW_MM = 30.0  # the band under the expert's lowest body whose votes are counted (about one body and its disc)


def vote_shares(votes: np.ndarray) -> str:
    """'L4 80 %, L5 20 %': the levels voted in ``votes`` (label values), by share; background left out."""
    values, counts = np.unique(votes[votes > 0], return_counts=True)
    order = np.argsort(-counts)
    return ", ".join(f"{LEVELS[int(values[i])]} {100 * counts[i] / counts.sum():.0f} %" for i in order) or "none"


def named_as(predicted: np.ndarray) -> str:
    """The name the map gives most of an expert body's voxels ('missed' where it labels none of them)."""
    values, counts = np.unique(predicted[predicted > 0], return_counts=True)
    return LEVELS[int(values[np.argmax(counts)])] if values.size else "missed"


def scan_rows(name: str, reference: np.ndarray, rows_mm: float, predicted: np.ndarray, votes: np.ndarray) -> list[list[str]]:
    """One row per expert body and one for the band under the lowest, all arrays canonical (slices, superior up,
    posterior); ``rows_mm``: the spacing along the superior axis."""
    rows = []
    top = reference.shape[1] - 1
    for level in sorted(int(v) for v in np.unique(reference) if v):
        body = reference == level
        extent = np.flatnonzero(body.any(axis=(0, 2)))
        cut = " (cut by the field of view)" if extent.max() >= top else ""
        rows.append([name, LEVELS[level] + cut, named_as(predicted[body]), vote_shares(votes[body])])
    lowest = np.flatnonzero(reference.any(axis=(0, 2))).min()
    band = np.zeros(reference.shape, bool)
    band[:, max(0, lowest - round(BELOW_MM / rows_mm)):lowest] = True
    rows.append([name, f"{BELOW_MM:.0f} mm under the lowest", named_as(predicted[band]), vote_shares(votes[band])])
    return rows


def middle_slices(ax_pair, name: str, image: np.ndarray, reference: np.ndarray, predicted: np.ndarray) -> None:
    """The expert's and the map's names on the scan's middle expert slice (canonical arrays, superior up)."""
    middle = int(np.flatnonzero(reference.any(axis=(1, 2))).mean())
    for ax, labels, title in zip(ax_pair, (reference, predicted), ("expert", "map")):
        ax.imshow(image[middle][::-1], cmap="gray")
        shown = labels[middle][::-1]
        ax.imshow(np.ma.masked_equal(shown, 0), cmap="tab10", vmin=0, vmax=9, alpha=0.45)
        for level in (int(v) for v in np.unique(shown) if v):
            rows, columns = np.nonzero(shown == level)
            ax.text(columns.mean(), rows.mean(), LEVELS[level], color="yellow", fontsize=8, ha="center")
        ax.set_title(f"{name}, {title}", fontsize=9)
        ax.axis("off")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--fold", action="append", required=True, metavar="K=CHECKPOINT:PREDICTIONS")
    parser.add_argument("--data", nargs="+", type=Path, required=True)
    args = parser.parse_args(argv)
    folds = {int(k): v.split(":") for k, v in (f.split("=", 1) for f in args.fold)}
    cases = gather_cases(args.data)
    wrong = [row for row in json.loads(args.evaluation.read_text())["cases"] if row["bodies_named"] < 1]
    figure, axes = plt.subplots(len(wrong), 2, figsize=(6, 3 * len(wrong)), squeeze=False)
    segmenters = {fold: Segmenter([Path(checkpoint)], fallback=False, refine=False) for fold, (checkpoint, _) in folds.items()}
    rows = []
    for row, ax_pair in zip(wrong, axes):
        predictions = Path(folds[row["fold"]][1])
        image, label = read_volume(cases[row["case"]].image), read_volume(cases[row["case"]].label)
        layout = volume_layout(label)
        votes = layout.to_canonical(segmenters[row["fold"]].segment(image).raw_labels)
        reference = layout.to_canonical(label.array)
        predicted = layout.to_canonical(read_volume(predictions / f"{row['case']}.nii.gz").array)
        rows += scan_rows(row["case"], reference, layout.spacing(label.spacing)[1], predicted, votes)
        middle_slices(ax_pair, row["case"], layout.to_canonical(image.array), reference, predicted)
    args.out.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(args.out / "middle-slices.png", dpi=60)
    header = ["scan", "expert body", "the map names it", "network votes inside"]
    (args.out / "votes.md").write_text(markdown_table(header, rows) + "\n")


if __name__ == "__main__":
    main()
