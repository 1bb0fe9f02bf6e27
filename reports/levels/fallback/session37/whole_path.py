"""`saunet segment`'s whole path run end to end on CV folds (``qc_calibration --fallback ... --refine``: the refined
GPU pair, QC, and where QC calls for it the fallback pair with its own refiner) against the same path routed from
saved rows with the fallback unrefined (routing.py, session 36), on the same scans.

    python reports/levels/fallback/session37/whole_path.py runs/whole37 reports/qc/gpu-pair-three-folds/names \
        reports/qc/curves-ensemble reports/qc/gpu-pair-three-folds/evaluation.json \
        reports/levels/fallback/curves-ensemble/curves-seeds01.json > reports/levels/fallback/session37/whole-path.md

The first argument: a qc_calibration output folder (fold_K.json, evaluation.json, measures.json); the rest are
routing.py's.
"""

import json
import sys
from pathlib import Path

from saunet.experiments.qc_calibration import agreement
from saunet.experiments.reports import metrics_table, paired_table, saved_cases
from saunet.quality import made_by_fallback

sys.path.insert(0, str(Path(__file__).parents[1]))
import routing  # noqa: E402

END_TO_END, ROUTED = "refined fallback, end to end", "unrefined fallback, routed (session 36)"


def end_to_end_rows(folder: Path) -> list[dict]:
    """The run's scans in every contrast: scores, verdict, and whether the fallback's result was kept."""
    return [{"case": row["case"], "dataset": row["dataset"], "contrast": row["contrast"], "fold": row["fold"],
             "model": END_TO_END, "verdict": row["verdict"], "handed": made_by_fallback(row["quality"]["statistics"]),
             **{m: row[m] for m in routing.SCORES}}
            for path in sorted(folder.glob("fold_*.json")) for row in json.loads(path.read_text())]


def routed_rows(first: Path, fallback: Path, keys: set) -> list[dict]:
    """routing.py's whole path on the scans in ``keys`` ((case, contrast))."""
    return [{**row, "model": ROUTED} for row in routing.routed_rows(routing.qc_rows(first), routing.qc_rows(fallback))
            if row["model"] == "ensemble + fallback" and (row["case"], row["contrast"]) in keys]


def main(run: str, first: str, fallback: str, first_cases: str, fallback_cases: str) -> None:
    mine = end_to_end_rows(Path(run))
    rows = mine + routed_rows(Path(first), Path(fallback), {(r["case"], r["contrast"]) for r in mine})
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print(f"Folds: {', '.join(str(f) for f in sorted({r['fold'] for r in mine}))}\n")
    for dataset, contrast in dict.fromkeys((row["dataset"], row["contrast"]) for row in mine):
        part = [row for row in rows if row["dataset"] == dataset and row["contrast"] == contrast]
        handed = sorted(row["case"] for row in part if row["model"] == END_TO_END and row["handed"])
        print(f"### {dataset}, {contrast}: {len(handed)} of {len(part) // 2} handed to the fallback\n")
        print(metrics_table(part, "model", [END_TO_END, ROUTED], routing.SCORES) + "\n")
        print(paired_table(part, END_TO_END, ROUTED, routing.SCORES) + "\n")
    print("### Quality control, all data sets and contrasts\n\n" + routing.flagged_counts(rows) + "\n")
    ours = {row["case"]: row for row in saved_cases(Path(run) / "evaluation.json")}
    handed = routing.handed_originals([r for r in rows if r["model"] == ROUTED])
    routed = {row["case"]: row for row in routing.originals(Path(first_cases), Path(fallback_cases), handed)
              if row["model"] == "ensemble + fallback"}
    full = [{**row, "model": END_TO_END} for row in ours.values()] + [{**routed[c], "model": ROUTED} for c in ours]
    for dataset in dict.fromkeys(row["dataset"] for row in full):
        part = [row for row in full if row["dataset"] == dataset]
        print(f"### {dataset}, as they are: full metrics\n\n{metrics_table(part, 'model', [END_TO_END, ROUTED])}\n")
        print(paired_table(part, END_TO_END, ROUTED, ("dice", "hd95", "hd", *routing.SCORES)) + "\n")
    measured = json.loads((Path(run) / "measures.json").read_text())
    print(f"### Measurements on the scans as they are, {END_TO_END}, against the expert masks\n\n{agreement(measured)[0]}")


if __name__ == "__main__":
    main(*sys.argv[1:])
