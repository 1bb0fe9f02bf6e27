"""The ensemble with the fallback at ~4 mm slices, from saved results (no model run): the ensemble's thinned CV test
scans (``thick_slices`` cases.json with its verdicts) keep its result unless ``quality.fallback_triggers`` hands
them to the fallback's result on the same thinned scan (the fallback CV's ``thick_slices`` cases.json).

    python reports/levels/fallback/thick_routing.py reports/levels/seed-ensemble/thick-slices/cases.json \
        reports/levels/fallback/thick-slices-curves-seed1/cases.json
"""

import sys
from statistics import mean

from saunet.experiments.reports import saved_cases
from saunet.quality import UNLIKE

SCORES = ("body_dice", "bodies_found", "bodies_named")


def handed(row: dict) -> bool:
    """The saved verdict's triggers (reasons as saved: the body count says 'vertebral bodies found')."""
    return (row["verdict"] == "fail" or any(r.startswith(UNLIKE + "body ") for r in row["reasons"])
            or any("vertebral bodies found" in r for r in row["reasons"]))


ensemble, fallback = saved_cases(sys.argv[1]), {row["case"]: row for row in saved_cases(sys.argv[2])}
print("| data set | scans handed over | " + " | ".join(f"{m}: ensemble / fallback alone / both" for m in SCORES) + " |")
print("|---|---|" + "---|" * len(SCORES))
for dataset in dict.fromkeys(row["dataset"] for row in ensemble):
    rows = [row for row in ensemble if row["dataset"] == dataset]
    cells = [" / ".join(f"{100 * mean(values):.1f}" for values in (
        [r[m] for r in rows], [fallback[r["case"]][m] for r in rows],
        [fallback[r["case"]][m] if handed(r) else r[m] for r in rows])) for m in SCORES]
    print(f"| {dataset} | {sum(map(handed, rows))} of {len(rows)} | " + " | ".join(cells) + " |")
