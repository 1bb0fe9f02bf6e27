"""Paired comparison of training recipes on the same CV folds: each run folder's evaluation.json (the fold's test
scans, post-processed), per data set, the first run against each other.

    python reports/levels/recipe/compare.py "20 epochs=runs/cv-levels/sau-net/fold_0" \
        "60 epochs=runs/cv-levels-60/sau-net/fold_0" ... > reports/levels/recipe/README-tables.md

A run may also be a ``cases.json`` of ``saunet.experiments.thick_slices`` or ``cross_site``, or the ``cv.json`` of a
committed CV report (its post-processed cases); only the metrics every row holds are compared. ``--folds 0`` (first,
before the runs) keeps only those folds' scans of every run, to set a run of fewer folds beside a whole CV. A label
given several times pools its files' rows (one recipe's folds scored in separate files).
"""

import sys
from pathlib import Path

from saunet.experiments.reports import runs_by_dataset, saved_cases

METRICS = ("dice", "hd95", "hd", "body_dice", "bodies_found", "bodies_named")
arguments = sys.argv[1:]
folds = {int(k) for k in arguments[1].split(",")} if arguments[:1] == ["--folds"] else None
runs = [argument.split("=", 1) for argument in arguments[2 if folds else 0:]]
rows = []
for label, folder in runs:
    for path in sorted(Path(folder).parent.glob(Path(folder).name)):
        rows += [{**row, "model": label} for row in saved_cases(path if path.suffix == ".json" else path / "evaluation.json")
                 if folds is None or row["fold"] in folds]
print(runs_by_dataset(rows, list(dict(runs)), [m for m in METRICS if all(m in row for row in rows)]))
