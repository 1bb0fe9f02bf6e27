"""The whole path's QC counts and accuracy (as routing.py counts them) with the "image unlike the training scans"
reasons derived again from each saved result's statistics and its fold model's training profile, at several
widenings of the trained ranges (``unfamiliar``'s margin; 0.25, ``quality.RANGE_MARGIN``, ships and must give
routing-gpu-pair.md back).

    python reports/levels/fallback/session37/margin.py reports/qc/gpu-pair-three-folds/names reports/qc/curves-ensemble \
        runs/gpu-g16 > reports/levels/fallback/session37/margin.md

The last argument: the first model's CV folder, whose fold checkpoints hold the training profiles.
"""

import sys
from pathlib import Path

import numpy as np

from saunet.checkpoints import Checkpoint
from saunet.experiments.qc_calibration import CONTRASTS
from saunet.quality import UNLIKE, TrainingProfile, unfamiliar

sys.path.insert(0, str(Path(__file__).parents[1]))
import routing  # noqa: E402

MARGINS = (0.25, 0.5, 0.75, 1.0)


def rederived(row: dict, profile: TrainingProfile, margin: float) -> dict:
    """``row`` with its "unlike" reasons derived again from its statistics at ``margin``."""
    saved = row["quality"]
    statistics = {k: float("nan") if v is None else v for k, v in saved["statistics"].items()}  # JSON's null: nan
    kept = [r for r in saved["reasons"] if not r.startswith(UNLIKE)]
    reasons = kept + [UNLIKE + r for r in unfamiliar(statistics, profile, margin)]
    return {**row, "quality": {**saved, "reasons": reasons}}


def summary_line(margin: float, rows: list[dict]) -> str:
    routed = [r for r in rows if r["model"] == "ensemble + fallback"]
    cells = [*routing.flagged(routed), str(sum(r["handed"] for r in routed))]
    for dataset in ("lumbar-t2", "lumbar-water-fat"):
        for contrast in CONTRASTS:
            part = [r["body_dice"] for r in routed if r["dataset"] == dataset and r["contrast"] == contrast]
            cells.append(f"{100 * np.mean(part):.2f}")
    return f"| {margin} | " + " | ".join(cells) + " |"


def main() -> None:
    first_folder, fallback_folder, cv = (Path(a) for a in sys.argv[1:4])
    first, fallback = routing.qc_rows(first_folder), routing.qc_rows(fallback_folder)
    profiles = {fold: TrainingProfile.from_dict(Checkpoint.load(cv / "sau-net" / f"fold_{fold}" / "checkpoint_best.pt")
                                                .training_profile) for fold in {row["fold"] for row in first.values()}}
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print("| margin | bad (< 0.80) flagged | good (>= 0.92) flagged | handed to the fallback | "
          + " | ".join(f"{d} {c} body-wise (%)" for d in ("lumbar-t2", "water-fat") for c in CONTRASTS) + " |")
    print("|" + "---|" * 10)
    for margin in MARGINS:
        mine = {key: rederived(row, profiles[row["fold"]], margin) for key, row in first.items()}
        print(summary_line(margin, routing.routed_rows(mine, fallback)))


if __name__ == "__main__":
    main()
