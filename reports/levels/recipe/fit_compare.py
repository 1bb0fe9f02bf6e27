"""Paired comparison of fold models' fit: `grid_ceiling.py --model` rows of each (its `shipped_fit` rows), split by a
CV fold into the scans the fold trained on and those it tested on, per data set, the first model against each other.

    python reports/levels/recipe/fit_compare.py reports/levels/cv60-prior/splits.json 0 \
        "A=runs/fit/a.json" "B=runs/fit/b.json"
"""

import json
import sys
from pathlib import Path

from saunet.experiments.reports import runs_by_dataset, saved_cases

METRICS = ("dice", "precision", "recall", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")


def main(splits: Path, fold: int, runs: dict[str, str]) -> None:
    split = json.loads(splits.read_text())["folds"][fold]
    rows = [{**row, "model": label} for label, path in runs.items() for row in saved_cases(path)
            if row["kind"] == "shipped_fit"]
    for part in ("train", "test"):
        of_part = [row for row in rows if row["case"] in split[part]]
        print(runs_by_dataset(of_part, list(runs), METRICS, f"{{dataset}}, the fold's {part} scans"))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), dict(argument.split("=", 1) for argument in sys.argv[3:]))
