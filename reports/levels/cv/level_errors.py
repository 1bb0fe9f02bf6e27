"""Where the cross-validated level predictions go wrong, per level: found (body-wise Dice >= 0.5), named
correctly, and the mean body-wise Dice, over every test scan of every fold (the CV's own predictions).

    python reports/levels/cv/level_errors.py runs/cv-levels sau-net ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat
"""

import sys
from pathlib import Path

import numpy as np

from saunet.crossval import saved_prediction
from saunet.datasets import list_cases
from saunet.evaluation import FOUND_DICE, body_scores
from saunet.imageio import read_volume
from saunet.labels import LEVELS

cv, model, *data = sys.argv[1:]
tally = {}
for case in [c for d in data for c in list_cases(d)]:
    predicted = saved_prediction(Path(cv), model, case.name)
    if not predicted:
        continue
    for value, dice, named in body_scores(read_volume(predicted).array, read_volume(case.label).array):
        entry = tally.setdefault((case.dataset, value), {"n": 0, "found": 0, "named": 0, "dice": [], "as": {}})
        entry["n"] += 1
        entry["found"] += dice >= FOUND_DICE
        entry["named"] += named == value
        entry["dice"].append(dice)
        if named != value:
            instead = LEVELS.get(named, "nothing")
            entry["as"][instead] = entry["as"].get(instead, 0) + 1
print("| data set | level | bodies | found | named correctly | body-wise Dice | named instead |")
print("|---|---|---|---|---|---|---|")
for (dataset, value), e in sorted(tally.items()):
    instead = ", ".join(f"{k} {v}" for k, v in sorted(e["as"].items()))
    print(f"| {dataset} | {LEVELS[value]} | {e['n']} | {e['found']} | {e['named']} | {np.mean(e['dice']):.3f} | {instead} |")
