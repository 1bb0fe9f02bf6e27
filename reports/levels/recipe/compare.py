"""Paired comparison of training recipes on the same CV folds: each run folder's evaluation.json (the fold's test
scans, post-processed), per data set, the first run against each other.

    python reports/levels/recipe/compare.py "20 epochs=runs/cv-levels/sau-net/fold_0" \
        "60 epochs=runs/cv-levels-60/sau-net/fold_0" ... > reports/levels/recipe/README-tables.md

A run may also be a ``cases.json`` of ``saunet.experiments.thick_slices`` or ``cross_site``, or the ``cv.json`` of a
committed CV report (its post-processed cases); only the metrics every row holds are compared.
"""

import sys
from pathlib import Path

from saunet.experiments.reports import metrics_table, paired_table, saved_cases

METRICS = ("dice", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")
runs = dict(argument.split("=", 1) for argument in sys.argv[1:])
rows = []
for label, folder in runs.items():
    for path in sorted(Path(folder).parent.glob(Path(folder).name)):
        rows += [{**row, "model": label} for row in saved_cases(path if path.suffix == ".json" else path / "evaluation.json")]
metrics = [m for m in METRICS if all(m in row for row in rows)]
for dataset in dict.fromkeys(row["dataset"] for row in rows):
    of_set = [row for row in rows if row["dataset"] == dataset]
    print(f"### {dataset}\n\n{metrics_table(of_set, 'model', list(runs), metrics)}\n")
    first, *others = runs
    for other in others:
        print(f"{paired_table(of_set, other, first, metrics)}\n")
