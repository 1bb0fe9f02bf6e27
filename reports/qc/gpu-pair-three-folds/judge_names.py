"""Judge the rows of ``name_disagreement.py`` runs both ways: as saved (the members' whole disagreement) and with
the disagreement on names alone where the result was refined (today's ``quality.rejudged`` reads it from the saved
statistics), thresholds unchanged; bad (body-wise < 0.80) and
good (>= 0.92) results flagged, per run and pooled.

    python reports/qc/gpu-pair-three-folds/judge_names.py "growth 16 pair=runs/names35-g16" "growth 32 pair=runs/names35-g32"
"""

import copy
import json
import sys
from pathlib import Path

from saunet.experiments.qc_calibration import BAD, GOOD
from saunet.quality import THRESHOLDS, rejudged


def judged_on(row: dict, names: bool) -> dict:
    """The row's saved quality with the members' disagreement on names (the probe's record) where it was refined and
    ``names`` says so, as ``saunet segment`` saves it since session 35, or without it, as the probe's code judged."""
    saved = copy.deepcopy(row["quality"])
    statistics = saved["statistics"]
    name = statistics.pop("member_name_disagreement", None)
    refined = statistics.pop("refined", name is not None)  # today's rows hold the names' share of refined results only
    if names and refined:
        statistics["member_name_disagreement"] = name
    return saved


def counts(rows: list[dict], judged: list[str]) -> str:
    bad = [v for r, v in zip(rows, judged) if r["body_dice"] < BAD]
    good = [v for r, v in zip(rows, judged) if r["body_dice"] >= GOOD]
    return f"{sum(v != 'ok' for v in bad)} of {len(bad)} | {sum(v != 'ok' for v in good)} of {len(good)}"


def main(runs: list[str]) -> None:
    print("| rows | judged | bad flagged | good flagged |\n|---|---|---|---|")
    pooled = {"whole": ([], []), "names": ([], [])}
    for label, folder in (run.split("=", 1) for run in runs):
        rows = json.loads((Path(folder) / "qc_cases.json").read_text())
        rows = [r for r in rows if r["body_dice"] == r["body_dice"]]  # a result with no reference body is not scored
        ways = {way: [rejudged(judged_on(r, way == "names"), THRESHOLDS).verdict for r in rows] for way in ("whole", "names")}
        assert ways["whole"] == [r["verdict"] for r in rows]  # judged again as saved, the same verdicts
        for way, judged in ways.items():
            print(f"| {label} | {way} | {counts(rows, judged).replace(' | ', ' | ')} |")
            pooled[way][0].extend(rows)
            pooled[way][1].extend(judged)
    for way, (rows, judged) in pooled.items():
        print(f"| pooled | {way} | {counts(rows, judged)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
