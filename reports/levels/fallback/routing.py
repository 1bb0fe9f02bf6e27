"""The shipped ensemble with the fallback model, scored from saved cross-validated results, no model run: each CV
test scan (as it is, intensity-inverted, T1-like) keeps the first model's result unless quality control's verdict on
it calls for the fallback (``quality.fallback_triggers``), in which case it takes the fallback model's result on
the same fold. Both models' results and verdicts are the fold models' saved QC rows (``qc_calibration``).

    python reports/levels/fallback/routing.py reports/qc/seeds01 reports/qc/curves \
        reports/levels/seed-ensemble/member-box/box-3-32-32.json reports/levels/cv60-curves/cv.json \
        > reports/levels/fallback/routing.md

The last two arguments: the two models' full metrics of the scans as they are (Dice, HD95, HD), for the same table.
"""

import json
import sys
from pathlib import Path

from saunet.experiments.qc_calibration import BAD, GOOD, agreement
from saunet.experiments.reports import metrics_table, paired_table, saved_cases
from saunet.quality import THRESHOLDS, UNLIKE, fallback_triggers, rejudged

SCORES = ("body_dice", "bodies_found", "bodies_named")


def qc_rows(folder: Path) -> dict:
    """Saved QC rows of every fold, by (case, contrast)."""
    return {(row["case"], row["contrast"]): row for path in sorted(folder.glob("fold_*.json"))
            for row in json.loads(path.read_text())}


def contrast_unlike(row: dict) -> bool:
    """Whether QC said this saved result's bodies' intensities were unlike its training scans'."""
    return any(reason.startswith(UNLIKE + "body ") for reason in row["quality"]["reasons"])


def triggers(verdict, row: dict) -> list[str]:
    """Why the fallback would run on this saved result, judged ``verdict`` (none: it would not)."""
    return fallback_triggers(verdict, contrast_unlike(row))


def routed_rows(first: dict, fallback: dict) -> list[dict]:
    """Per scan and contrast: each model's scores and the routed one's, and each result's QC verdict."""
    rows = []
    for key, row in first.items():
        verdict = rejudged(row["quality"], THRESHOLDS)  # today's judge: names only where the outlines were refined
        handed = bool(triggers(verdict, row))
        chosen = fallback[key] if handed else {**row, "verdict": verdict.verdict}
        base = {"case": row["case"], "dataset": row["dataset"], "contrast": row["contrast"]}
        rows += [{**base, "model": "ensemble", "verdict": verdict.verdict, **{m: row[m] for m in SCORES}},
                 {**base, "model": "fallback alone", "verdict": fallback[key]["verdict"],
                  **{m: fallback[key][m] for m in SCORES}},
                 {**base, "model": "ensemble + fallback", "verdict": "check" if handed and chosen["verdict"] == "ok"
                  else chosen["verdict"], "handed": handed, **{m: chosen[m] for m in SCORES}}]
    return rows


def flagged(rows: list[dict]) -> list[str]:
    """Issue 19's QC count of ``rows``: bad results flagged, good results flagged ("N of M" each)."""
    bad = [row for row in rows if row["body_dice"] < BAD]
    good = [row for row in rows if row["body_dice"] >= GOOD]
    return [f"{sum(r['verdict'] != 'ok' for r in part)} of {len(part)}" for part in (bad, good)]


def flagged_counts(rows: list[dict]) -> str:
    """Issue 19's QC count per model: bad results flagged, good results flagged."""
    lines = ["| model | bad (< 0.80) flagged | good (>= 0.92) flagged |", "|---|---|---|"]
    for model in dict.fromkeys(row["model"] for row in rows):
        lines.append(f"| {model} | " + " | ".join(flagged([row for row in rows if row["model"] == model])) + " |")
    return "\n".join(lines)


def handed_originals(rows: list[dict]) -> set[str]:
    """The scans handed to the fallback as they are (not inverted or T1-like)."""
    return {row["case"] for row in rows if row.get("handed") and row["contrast"] == "original"}


def originals(first_cases: Path, fallback_cases: Path, handed: set[str]) -> list[dict]:
    """Full metrics of the scans as they are: the ensemble's, and the routed ones (the fallback's where ``handed``)."""
    ensemble, fallback = ({row["case"]: row for row in saved_cases(path)} for path in (first_cases, fallback_cases))
    return ([{**row, "model": "ensemble"} for row in ensemble.values()]
            + [{**(fallback[case] if case in handed else row), "model": "ensemble + fallback"}
               for case, row in ensemble.items()])


def routed_measures(first: Path, fallback: Path, handed: set[str]) -> list[dict]:
    """Measurements of the scans as they are (each folder's measures.json), the fallback's where ``handed``."""
    fallbacks = {row["case"]: row for row in json.loads((fallback / "measures.json").read_text())}
    return [fallbacks[row["case"]] if row["case"] in handed else row
            for row in json.loads((first / "measures.json").read_text())]


def main(first: str, fallback: str, first_cases: str, fallback_cases: str) -> None:
    rows = routed_rows(qc_rows(Path(first)), qc_rows(Path(fallback)))
    print(f"Command: `python reports/levels/fallback/routing.py {first} {fallback} {first_cases} {fallback_cases}`\n")
    for (dataset, contrast) in dict.fromkeys((row["dataset"], row["contrast"]) for row in rows):
        mine = [row for row in rows if row["dataset"] == dataset and row["contrast"] == contrast]
        handed = sorted(row["case"] for row in mine if row.get("handed"))
        print(f"### {dataset}, {contrast}: {len(handed)} of {len(mine) // 3} handed to the fallback\n")
        print(metrics_table(mine, "model", None, SCORES) + "\n")
        print(paired_table(mine, "ensemble + fallback", "ensemble", SCORES) + "\n")
        print(f"Handed over: {', '.join(handed) or 'none'}\n")
    print("### Quality control, all data sets and contrasts\n\n" + flagged_counts(rows) + "\n")
    handed = handed_originals(rows)
    full = originals(Path(first_cases), Path(fallback_cases), handed)
    for dataset in dict.fromkeys(row["dataset"] for row in full):
        mine = [row for row in full if row["dataset"] == dataset]
        print(f"### {dataset}, as they are: full metrics\n\n{metrics_table(mine)}\n")
        print(paired_table(mine, "ensemble + fallback", "ensemble", ("dice", "hd95", "hd", *SCORES)) + "\n")
    for label, measured in (("ensemble", json.loads((Path(first) / "measures.json").read_text())),
                            ("ensemble + fallback", routed_measures(Path(first), Path(fallback), handed))):
        print(f"### Measurements on the scans as they are, {label}, against the expert masks\n\n{agreement(measured)[0]}\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
