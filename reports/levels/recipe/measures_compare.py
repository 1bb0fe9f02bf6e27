"""Measurement agreement (issue 19: heights and volumes of predicted against expert masks) of several CV runs,
on the scans that every run has a prediction for (a run of one fold limits all to that fold's test scans).

    python reports/levels/recipe/measures_compare.py "1.875 mm=runs/cv-fine1875" "1.25 mm=runs/cv-fine125" \
        --data ../shared/data/lumbar-t2 --data ../shared/data/lumbar-water-fat
"""

import argparse
from pathlib import Path

from saunet.experiments.qc_calibration import agreement, measured_predictions

parser = argparse.ArgumentParser()
parser.add_argument("runs", nargs="+", help="NAME=CV folder")
parser.add_argument("--model", default="sau-net")
parser.add_argument("--data", action="append", required=True, type=Path)
args = parser.parse_args()

measured = {name: measured_predictions(Path(cv), args.model, args.data)
            for name, cv in (run.split("=", 1) for run in args.runs)}
shared = set.intersection(*({row["case"] for row in rows} for rows in measured.values()))
print(f"{len(shared)} scans: {', '.join(sorted(shared))}\n")
for name, rows in measured.items():
    table, _ = agreement([row for row in rows if row["case"] in shared])
    print(f"### {name}\n\n{table}\n")
