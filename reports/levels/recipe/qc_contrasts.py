"""Models compared on every CV test scan in the three contrasts quality control's calibration segments them in
(as they are, inverted, T1-like): the body-wise scores in the fold rows qc_calibration saved
(``OUT/fold_K.json``), paired per scan and contrast, the first model against each other. No model runs.

    python reports/levels/recipe/qc_contrasts.py "seed 0=reports/qc/cv60-prior" "seeds 0+1=reports/qc/seeds01" \
        "curves=runs/qc-curves"
"""

import json
import sys
from pathlib import Path

from saunet.experiments.reports import metrics_table, paired_table

METRICS = ("body_dice", "bodies_found", "bodies_named")
CONTRASTS = ("original", "inverted", "T1-like")


def fold_rows(label: str, folder: Path) -> list[dict]:
    return [{**row, "model": label} for path in sorted(folder.glob("fold_*.json")) for row in json.loads(path.read_text())]


def main(arguments: list[str]) -> None:
    runs = dict(argument.split("=", 1) for argument in arguments)
    rows = [row for label, folder in runs.items() for row in fold_rows(label, Path(folder))]
    first, *others = runs
    for contrast in CONTRASTS:
        for dataset in dict.fromkeys(row["dataset"] for row in rows):
            part = [row for row in rows if row["contrast"] == contrast and row["dataset"] == dataset]
            print(f"### {dataset}, {contrast}\n\n{metrics_table(part, 'model', list(runs), list(METRICS))}\n")
            for other in others:
                print(f"{paired_table(part, other, first, list(METRICS))}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
