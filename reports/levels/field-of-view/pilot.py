"""The --field-edges pilots against their baseline (fold 0, one model each, refined, no fallback), per data set:
body-wise Dice and names on the scans as they are, and names of the bodies wholly in view on the cropped scans
(:func:`field_of_view.body_rows`), with per-scan pairs. The first run given is the baseline; a run may be several folders
joined by ``+`` (folds scored apart); data folders (those without fold results) may come in any place.

    python reports/levels/field-of-view/pilot.py runs/fe39-base-eval runs/fe39-edge-eval \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat > reports/levels/field-of-view/pilot.md
"""

import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.experiments.qc_calibration import PREDICTIONS

sys.path.insert(0, str(Path(__file__).parent))
from field_of_view import body_rows  # noqa: E402


def scan_scores(run: Path, cases: dict) -> dict[tuple[str, str], dict]:
    """(case, variant) -> data set, body-wise Dice, share named (for the crops: of the bodies wholly in view)."""
    scores = {}
    for fold in sorted(run.glob("fold_*.json")):
        for row in json.loads(fold.read_text()):
            if row["contrast"] == "original":
                scores[row["case"], "as it is"] = {"dataset": row["dataset"], "dice": row["body_dice"],
                                                    "named": row["bodies_named"]}
    by_scan: dict = {}
    for r in body_rows(run, run / PREDICTIONS, cases):
        if not r["cut"]:
            by_scan.setdefault((r["case"], r["variant"]), []).append(r)
    for key, rows in by_scan.items():
        scores[key] = {"dataset": rows[0]["dataset"], "dice": float(np.mean([r["dice"] for r in rows])),
                       "named": float(np.mean([r["named"] == r["level"] for r in rows]))}
    return scores


def main() -> None:
    runs = [arg for arg in sys.argv[1:] if list(Path(arg.split("+")[0]).glob("fold_*.json"))]
    cases = gather_cases([Path(arg) for arg in sys.argv[1:] if arg not in runs])
    scores = [{k: v for part in run.split("+") for k, v in scan_scores(Path(part), cases).items()} for run in runs]
    names = " / ".join("+".join(Path(part).name for part in run.split("+")) for run in runs)
    print(f"`python {' '.join(sys.argv)}`\n")
    print(f"Each cell: {names}. Scans better / worse named: each run after the first against the first.\n")
    print("| data set | scans | body-wise Dice | named | scans better / worse named |\n|---|---|---|---|---|")
    for dataset in sorted({s["dataset"] for s in scores[0].values()}):
        for variant in ("as it is", "cut-below", "cut-above"):
            keys = sorted(k for k, s in scores[0].items() if s["dataset"] == dataset and k[1] == variant
                          and all(k in other for other in scores))
            dice = " / ".join(f"{100 * np.mean([run[k]['dice'] for k in keys]):.2f}" for run in scores)
            named = " / ".join(f"{100 * np.mean([run[k]['named'] for k in keys]):.1f}" for run in scores)
            changed = ", ".join(f"{sum(run[k]['named'] > scores[0][k]['named'] for k in keys)} / "
                                f"{sum(run[k]['named'] < scores[0][k]['named'] for k in keys)}" for run in scores[1:])
            print(f"| {dataset}, {variant} | {len(keys)} | {dice} % | {named} % | {changed} |")


if __name__ == "__main__":
    main()
