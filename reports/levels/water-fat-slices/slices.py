"""How the lumbar-water-fat scans were made across slices, and what that costs a body-wise Dice against their
reference. The "1 mm" slices are linear interpolations between acquired slices 4 mm apart, and the expert masks
are constant over blocks of slices; a segmentation that follows the anatomy smoothly across slices cannot match
such blocks exactly.

    python reports/levels/water-fat-slices/slices.py ../shared/data/lumbar-water-fat \
        [runs/both-base/sau-net/fold_*/predictions ...] > reports/levels/water-fat-slices/slices.md

For each scan: the step between acquired slices (the slices where the image's second difference across slices is
more than that of a linear interpolation), and the reference made smooth across slices (each level's mask
interpolated linearly between the centres of the reference's runs of identical slices, threshold 0.5): its
body-wise Dice against the reference is the most a smooth segmentation of the same anatomy scores. With prediction
folders: each prediction's body-wise Dice against the reference and against the smooth reference, and in the
middle half of each body's slices against its outer quarters.
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from saunet.evaluation import body_scores, overlap_metrics

KNOT_FACTOR = 3.0  # an acquired slice's second difference against the median slice's (interpolated slices: ~0)


def load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def acquired_step(image: np.ndarray) -> int:
    """Slices between acquired ones along axis 0 (1: every slice acquired)."""
    image = image.astype(np.float32)
    second = np.abs(image[:-2] - 2 * image[1:-1] + image[2:]).mean(axis=(1, 2))
    knots = np.flatnonzero(second > KNOT_FACTOR * np.median(second)) + 1
    return int(np.median(np.diff(knots))) if knots.size > 2 else 1


def run_centres(label: np.ndarray) -> np.ndarray:
    """Centres (slice positions) of the runs of identical consecutive slices of ``label`` along axis 0."""
    changes = np.flatnonzero(np.any(label[1:] != label[:-1], axis=(1, 2))) + 1
    starts, ends = np.r_[0, changes], np.r_[changes, label.shape[0]]
    long = ends - starts >= 2
    return (starts[long] + ends[long] - 1) / 2.0


def smooth_reference(label: np.ndarray) -> np.ndarray:
    """Each level of ``label`` interpolated linearly across slices between its runs' centres, threshold 0.5."""
    centres = run_centres(label)
    samples = label[np.round(centres).astype(int)]
    x = np.arange(label.shape[0])
    low = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, len(centres) - 2)
    t = np.clip((x - centres[low]) / (centres[low + 1] - centres[low]), 0, 1)[:, None, None]
    smooth = np.zeros_like(label)
    best = np.full(label.shape, 0.5, np.float32)
    for value in (v for v in np.unique(label) if v):
        share = (1 - t) * (samples[low] == value) + t * (samples[low + 1] == value)
        smooth[share >= best] = value
        best = np.maximum(best, share)
    return smooth


def halves(pred: np.ndarray, ref: np.ndarray, value: int) -> tuple[float, float]:
    """Dice of level ``value`` in the middle half of the reference body's slices, and in the rest."""
    rows = np.flatnonzero((ref == value).any(axis=(1, 2)))
    quarter = (rows[-1] - rows[0]) // 4
    middle = np.zeros(ref.shape[0], bool)
    middle[rows[0] + quarter:rows[-1] - quarter + 1] = True
    p, r = pred == value, ref == value
    return (overlap_metrics(p[middle], r[middle])["dice"], overlap_metrics(p[~middle], r[~middle])["dice"])


def main(data: Path, prediction_folders: list[Path]) -> None:
    predictions = {p.name.removesuffix(".nii.gz"): p for folder in prediction_folders for p in folder.glob("*.nii.gz")}
    steps, ceiling, rows = [], [], []
    for label_path in sorted((data / "labelsTr").glob("*.nii.gz")):
        case = label_path.name.removesuffix(".nii.gz")
        label = load(label_path)
        steps.append(acquired_step(load(data / "imagesTr" / f"{case}_0000.nii.gz")))
        smooth = smooth_reference(label)
        ceiling += [d for _, d, _ in body_scores(smooth, label)]
        if case in predictions:
            pred = load(predictions[case])
            for (value, d, _), (_, ds, _) in zip(body_scores(pred, label), body_scores(pred, smooth)):
                rows.append((d, ds, *halves(pred, label, value)))
    counts = {s: steps.count(s) for s in sorted(set(steps))}
    print(f"# Slices of {data.name}\n\n{len(steps)} scans; step between acquired slices (scans): {counts}\n")
    print(f"Smooth reference against the reference: body-wise Dice {100 * np.mean(ceiling):.2f} % "
          f"(min {100 * np.min(ceiling):.2f} %, {len(ceiling)} bodies)\n")
    if rows:
        r = 100 * np.array(rows)
        print(f"Predictions ({len(rows)} bodies): body-wise Dice against the reference {r[:, 0].mean():.2f} %, "
              f"against the smooth reference {r[:, 1].mean():.2f} %; middle half of the body's slices "
              f"{r[:, 2].mean():.2f} %, outer quarters {r[:, 3].mean():.2f} %")


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
