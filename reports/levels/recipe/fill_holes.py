"""Holes filled inside each level's body (session 18) against the level maps as post-processed, on a CV folder's
saved predictions of every data set. A vertebral body has no holes, but a body with patchy marrow signal comes out
of the network with pockets of background inside it. The step would run last, on the final level map, so applying
it to the saved maps gives what the pipeline with it would write. Per data set, the metrics of ``saunet cv`` and
the paired per-case differences.

    python reports/levels/recipe/fill_holes.py runs/both-base ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat --sagittal > reports/levels/recipe/fill-holes-cv60-prior.md

Without ``--sagittal`` a hole is background that the level encloses in 3D; with it, background that the level
encloses in a sagittal slice (a pocket open to the next slice counts). Every hole enclosed in 3D is enclosed in
each of its slices, so the sagittal rule fills a superset of the 3D one; it bought nothing measurable, and the 3D
rule was not run to the end.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from saunet.crossval import gather_cases, saved_prediction
from saunet.evaluation import level_map_metrics
from saunet.experiments.reports import comparison_by_dataset
from saunet.imageio import read_volume
from saunet.orientation import volume_layout

METRICS = ("dice", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")
BEFORE = "as post-processed"


def filled(labels: np.ndarray, slice_axis: int | None) -> np.ndarray:
    """``labels`` with the background each level encloses given that level (per slice along ``slice_axis``, or in
    3D when None)."""
    out = labels.copy()
    structure = None
    if slice_axis is not None:  # no connection across slices: each sagittal slice on its own
        structure = ndimage.generate_binary_structure(3, 1)
        for end in (0, 2):
            index = [1, 1, 1]
            index[slice_axis] = end
            structure[tuple(index)] = False
    for value in np.unique(labels[labels > 0]):
        holes = ndimage.binary_fill_holes(labels == value, structure) & (out == 0)
        out[holes] = value
    return out


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("cv", type=Path)
parser.add_argument("data", type=Path, nargs="+")
parser.add_argument("--sagittal", action="store_true")
arguments = parser.parse_args()
after = "holes filled per sagittal slice" if arguments.sagittal else "holes filled in 3D"
rows = []
for name, case in gather_cases(arguments.data).items():
    predicted = saved_prediction(arguments.cv, "sau-net", name)
    if not predicted:
        continue
    label = read_volume(case.label)
    before = read_volume(predicted).array
    axis = volume_layout(label).slice_axis if arguments.sagittal else None
    for model, labels in ((BEFORE, before), (after, filled(before, axis))):
        rows.append({"model": model, "case": name, "dataset": case.dataset,
                     **level_map_metrics(labels, label.array, label.spacing)})
print(f"Command: `python {' '.join(sys.argv)}`\n")
print(comparison_by_dataset(rows, BEFORE, after, METRICS))
