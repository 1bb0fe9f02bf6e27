"""The --field-edges pilot against its baseline (fold 0, one model each, refined, no fallback), per data set: body-wise
Dice and names on the scans as they are, and names of the bodies wholly in view on the cropped scans
(:func:`field_of_view.body_rows`), with per-scan pairs.

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
    base, edge = Path(sys.argv[1]), Path(sys.argv[2])
    cases = gather_cases([Path(p) for p in sys.argv[3:]])
    before, after = scan_scores(base, cases), scan_scores(edge, cases)
    print(f"`python {' '.join(sys.argv)}`\n")
    print("| data set | scans | body-wise Dice: base / field edges | named: base / field edges | scans better / worse "
          "named |\n|---|---|---|---|---|")
    for dataset in sorted({s["dataset"] for s in before.values()}):
        for variant in ("as it is", "cut-below", "cut-above"):
            keys = sorted(k for k, s in before.items() if s["dataset"] == dataset and k[1] == variant and k in after)
            pairs = [(before[k], after[k]) for k in keys]
            dice = [np.mean([p[i]["dice"] for p in pairs]) for i in (0, 1)]
            named = [np.mean([p[i]["named"] for p in pairs]) for i in (0, 1)]
            better = sum(a["named"] > b["named"] for b, a in pairs)
            worse = sum(a["named"] < b["named"] for b, a in pairs)
            print(f"| {dataset}, {variant} | {len(pairs)} | {100 * dice[0]:.2f} / {100 * dice[1]:.2f} % | "
                  f"{100 * named[0]:.1f} / {100 * named[1]:.1f} % | {better} / {worse} |")


if __name__ == "__main__":
    main()
