"""Each level's largest connected region alone (nnU-Net's per-class largest-component step, tried in session 11
and not kept: README.md) against the level maps as post-processed, on a CV folder's saved predictions of every
data set: the step would run last, on the final level map, so applying it to the saved maps gives what the
pipeline with it would write. Per data set, the metrics of ``saunet cv`` and the paired per-case differences.

    python reports/levels/recipe/largest_region.py runs/cv-finetune ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat > reports/levels/recipe/largest-region-finetune.md

With ``--within MM`` (session 15), a detached region stays when it lies within MM millimetres of its level's
largest region: a distance rule for the pieces fragment joining attaches.
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
from saunet.postprocessing import level_regions

METRICS = ("dice", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")
BEFORE, AFTER = "fragments kept", "largest region per level"


def largest_region_per_level(labels: np.ndarray, spacing: tuple[float, ...] = (), within: float = 0.0) -> np.ndarray:
    """``labels`` with only the largest connected region of each value kept, and the regions of that value within
    ``within`` mm of it."""
    regions = level_regions(labels)
    sizes = np.bincount(regions.ravel())
    value_of = np.zeros(len(sizes), np.int64)
    value_of[regions.ravel()] = labels.ravel()
    best = np.zeros(int(value_of.max()) + 1, np.int64)
    for region in np.argsort(sizes[1:], kind="stable") + 1:  # ascending: the largest region of a value writes last
        best[value_of[region]] = region
    keep = np.zeros(len(sizes), bool)
    keep[best[best > 0]] = True
    for region in best[best > 0] if within else []:
        near = ndimage.distance_transform_edt(regions != region, sampling=spacing) <= within
        keep[np.unique(regions[near & (value_of[regions] == value_of[region])])] = True
    return np.where(keep[regions], labels, 0).astype(labels.dtype)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("cv", type=Path)
parser.add_argument("data", type=Path, nargs="+")
parser.add_argument("--within", type=float, default=0.0, metavar="MM")
arguments = parser.parse_args()
cv, data, within = arguments.cv, arguments.data, arguments.within
if within:
    AFTER = f"detached regions over {within:g} mm away dropped"
rows = []
for name, case in gather_cases(data).items():
    predicted = saved_prediction(cv, "sau-net", name)
    if not predicted:
        continue
    label = read_volume(case.label)
    before = read_volume(predicted).array
    for model, labels in ((BEFORE, before), (AFTER, largest_region_per_level(before, label.spacing, within))):
        rows.append({"model": model, "case": name, "dataset": case.dataset,
                     **level_map_metrics(labels, label.array, label.spacing)})
print(f"Command: `python {' '.join(sys.argv)}`\n")
print(comparison_by_dataset(rows, BEFORE, AFTER, METRICS))
