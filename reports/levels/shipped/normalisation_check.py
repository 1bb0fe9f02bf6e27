"""The shipped model's level maps with the intensity normalisation of session 11 (float32, in place) against the
one before it (float64 temporaries), on every scan of the given data sets: voxels that differ per scan.

    python reports/levels/shipped/normalisation_check.py ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat
"""

import sys
from pathlib import Path

import numpy as np

import saunet.preprocessing as preprocessing
from saunet.crossval import gather_cases
from saunet.imageio import read_volume
from saunet.inference import Segmenter

current = preprocessing.normalise_intensities


def before(slices: np.ndarray, clip_percentiles: tuple[float, float]) -> np.ndarray:
    low, high = np.percentile(slices, clip_percentiles)
    clipped = np.clip(slices.astype(np.float32), low, high)
    return ((clipped - clipped.mean()) / max(float(clipped.std()), 1e-6)).astype(np.float32)


segmenter = Segmenter()
differing = []
for name, case in gather_cases([Path(a) for a in sys.argv[1:]]).items():
    volume = read_volume(case.image)
    maps = []
    for normalise in (before, current):
        preprocessing.normalise_intensities = normalise
        maps.append(segmenter.segment(volume).labels)
    differing.append(int((maps[0] != maps[1]).sum()))
    print(name, "voxels differing:", differing[-1], flush=True)
print(f"{sum(d == 0 for d in differing)} of {len(differing)} scans identical; at most {max(differing)} voxels differ")
