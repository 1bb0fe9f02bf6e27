"""How far the lowest (highest) predicted body lies from the image's caudal (cranial) edge, in mm and in the map's
median body height, on the maps of the scans as they are and cropped: whether a quality-control reason "the field of
view ends under the lowest body" could tell a scan without its sacrum from one with it (rule.md, decision 2).

    python reports/levels/field-of-view/edge_gaps.py original=runs/whole38/predictions \
        cut-below=runs/fov39/predictions-cut-below cut-above=runs/fov39/predictions-cut-above \
        > reports/levels/field-of-view/edge-gaps.md
"""

import sys
from pathlib import Path

import numpy as np

from saunet.imageio import read_volume
from saunet.orientation import volume_layout


def extent(present: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(present)
    return int(rows.min()), int(rows.max())


def gaps(labels) -> tuple[float, float, float]:
    """(mm under the lowest body, mm over the highest, the median body's cranio-caudal height in mm)."""
    axis, towards_superior = volume_layout(labels).superior
    others = tuple(a for a in range(3) if a != axis)
    mm, size = labels.spacing[axis], labels.array.shape[axis]
    low, high = extent(labels.array.any(axis=others))
    below, above = (low * mm, (size - 1 - high) * mm)[::towards_superior]
    heights = [np.subtract(*extent((labels.array == v).any(axis=others))[::-1]) + 1 for v in np.unique(labels.array)[1:]]
    return below, above, float(np.median(heights)) * mm


def main() -> None:
    print(f"`python {' '.join(sys.argv)}`\n")
    print("| maps | scans | mm under the lowest body: min / 10th pct / median / max | in body heights: min / 10th "
          "/ median | mm over the highest body: median |\n|---|---|---|---|---|")
    for argument in sys.argv[1:]:
        name, folder = argument.split("=", 1)
        measured = np.array([gaps(read_volume(path)) for path in sorted(Path(folder).glob("*.nii*"))])
        below, above, height = measured.T
        print(f"| {name} | {len(measured)} | {' / '.join(f'{v:.1f}' for v in np.percentile(below, (0, 10, 50, 100)))} | "
              f"{' / '.join(f'{v:.2f}' for v in np.percentile(below / height, (0, 10, 50)))} | {np.median(above):.1f} |")


if __name__ == "__main__":
    main()
