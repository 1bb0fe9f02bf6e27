"""Where in a vertebral body the level maps of a CV fold differ from the expert masks: each body's wrong voxels
(missed or extra, within its level) by their sagittal slice against the expert body's left-right extent, beyond it,
in its outer 4 mm at either side, or inside, and the body-wise Dice each body would have were one part right.

    python reports/levels/errors/where.py runs/fine-zoom2/sau-net/fold_0/predictions reports/levels/cv60-prior/splits.json 0 \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat > reports/levels/errors/where-fold0.md

Bodies of the levels each data set annotates; a predicted voxel counts for the level it is named.
"""

import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.experiments.reports import markdown_table
from saunet.imageio import read_volume
from saunet.orientation import volume_layout
from saunet.preprocessing import foreground_bounds

OUTER_MM = 4.0
PARTS = ("beyond", "outer", "inside")


def body_parts(reference: np.ndarray, predicted: np.ndarray, slice_axis: int, slice_mm: float) -> dict:
    """Missed and extra voxels of one body (bool masks) per part of its sagittal extent, and its voxel count."""
    slices = np.arange(reference.shape[slice_axis])
    extent = foreground_bounds(reference)[slice_axis]
    edge = np.minimum(slices - extent.start, extent.stop - 1 - slices) * slice_mm  # from the nearer lateral end
    part_of_slice = np.where((slices < extent.start) | (slices >= extent.stop), 0, np.where(edge < OUTER_MM, 1, 2))
    shape = [1, 1, 1]
    shape[slice_axis] = -1
    part = np.broadcast_to(part_of_slice.reshape(shape), reference.shape)
    counts = {"reference": int(reference.sum())}
    for index, name in enumerate(PARTS):
        counts[f"missed_{name}"] = int((reference & ~predicted & (part == index)).sum())
        counts[f"extra_{name}"] = int((predicted & ~reference & (part == index)).sum())
    return counts


def dice_with(counts: dict, right: str | None) -> float:
    """The body's Dice were its wrong voxels in part ``right`` right (None: as it is)."""
    missed = sum(counts[f"missed_{p}"] for p in PARTS if p != right)
    extra = sum(counts[f"extra_{p}"] for p in PARTS if p != right)
    overlap = counts["reference"] - missed
    return 2 * overlap / (2 * overlap + missed + extra)


def identical_runs(label: np.ndarray, slice_axis: int) -> list[int]:
    """Lengths of the runs of identical consecutive sagittal slices inside a mask's extent (the runs at its two ends
    left out)."""
    slices = np.moveaxis(label, slice_axis, 0)
    extent = foreground_bounds(label)[slice_axis]
    changes = [i for i in range(extent.start, extent.stop - 1) if not np.array_equal(slices[i], slices[i + 1])]
    return list(np.diff(changes))


def main(predictions: Path, splits: Path, fold: int, data: list[Path]) -> None:
    cases = gather_cases(data)
    rows = []
    for name in json.loads(splits.read_text())["folds"][fold]["test"]:
        label = read_volume(cases[name].label)
        predicted = read_volume(predictions / f"{name}.nii.gz").array
        layout = volume_layout(label)
        for level in cases[name].annotated:
            reference = label.array == level
            if reference.any():
                rows.append({"dataset": cases[name].dataset, "case": name, "level": level,
                             **body_parts(reference, predicted == level, layout.slice_axis, label.spacing[layout.slice_axis])})
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        mine = [row for row in rows if row["dataset"] == dataset]
        wrong = sum(row[f"{kind}_{p}"] for row in mine for kind in ("missed", "extra") for p in PARTS)
        table = [[f"{kind} voxels, {p}", f"{sum(row[f'{kind}_{p}'] for row in mine) / wrong:.1%}"]
                 for p in PARTS for kind in ("missed", "extra")]
        dice = [[right or "as predicted", f"{100 * np.mean([dice_with(row, right) for row in mine]):.2f}"]
                for right in (None, *PARTS)]
        print(f"### {dataset} ({len(mine)} bodies of {len({row['case'] for row in mine})} scans)\n")
        print(markdown_table(["share of the wrong voxels", ""], table) + "\n")
        print(markdown_table(["body-wise Dice (%) with this part right", ""], dice) + "\n")
        masks = [read_volume(case.label) for case in cases.values() if case.dataset == dataset]
        runs = np.bincount([n for mask in masks for n in identical_runs(mask.array, volume_layout(mask).slice_axis)])
        print(f"Runs of identical sagittal slices inside the expert masks of all {dataset} scans, by length (1, 2, 3, ...): "
              f"{', '.join(str(int(n)) for n in runs[1:])}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), [Path(p) for p in sys.argv[4:]])
