"""Scans of a site no fold trained on: each finished fold's model on every scan of the given data sets, at their
own slices and with every k-th slice kept (~4 mm), scored body-wise, with the QC verdict. Trained on one site and
tested on another, it is the nearest stand-in here for the scanners, contrasts and slice thicknesses of centres in
no training set.

    python -m saunet.experiments.cross_site --cv runs/xsite-base --model sau-net --epochs 70 \
        --data ../shared/data/lumbar-water-fat --out reports/levels/cross-site/base
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from saunet.crossval import finished_folds, fold_checkpoints, gather_cases
from saunet.datasets import read_case
from saunet.experiments.qc_calibration import fold_arguments
from saunet.experiments.thick_slices import TARGET_MM, scored, thick_copies, write_results


def run(cv: Path, model: str, data: list[Path], epochs: int, members: list[Path] = ()) -> list[dict]:
    """One row per fold, scan and slicing; a thinned scan's data set is named with its ~4 mm."""
    from saunet.inference import Segmenter

    cases = gather_cases(data)
    rows = []
    for split, run_dir in finished_folds(cv, model, epochs, members):
        segmenter = Segmenter(fold_checkpoints(run_dir, members))
        for name, case in tqdm(cases.items(), desc=f"fold {split['fold']}", unit="scan"):
            image, label = read_case(case)
            thin_image, thin_label, _ = thick_copies(image, label)
            about = {"case": name, "fold": split["fold"]}
            rows.append({**about, **scored(segmenter, image, label, case.dataset)})
            rows.append({**about, **scored(segmenter, thin_image, thin_label, f"{case.dataset} (~{TARGET_MM:g} mm)")})
    return rows


def main(argv: list[str] | None = None) -> None:
    args = fold_arguments(__doc__.splitlines()[0], argv)
    rows = run(args.cv, args.model, args.data, args.epochs, args.member)
    write_results(rows, args.out, "Scans of a site no fold trained on", __spec__.name, argv)


if __name__ == "__main__":
    main()
