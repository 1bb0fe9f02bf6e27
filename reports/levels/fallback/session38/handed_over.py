"""A result handed to the fallback, judged by the fallback's own QC against the contrasts it was trained for
(``quality.training_profile`` with ``contrast_curves``) and kept at that verdict (``quality.handed_over``), against
the rule shipped before session 38 (at least ``check``, judged against the training scans as they are): the saved
end-to-end rows of a ``qc_calibration --fallback ... --refine`` run judged again, no model run.

    python reports/levels/fallback/session38/handed_over.py runs/whole37 reports/levels/cv60-prior/splits.json \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat > reports/levels/fallback/session38/handed-over.md

Every fold's fallback pair was trained with ``--contrast-curves 0.3`` (session 37's README).
"""

import json
import sys
from pathlib import Path

from saunet.crossval import gather_cases
from saunet.experiments.qc_calibration import GOOD
from saunet.quality import THRESHOLDS, made_by_fallback, rejudged, training_profile

sys.path.insert(0, str(Path(__file__).parents[1]))
import routing  # noqa: E402

CURVES = 0.3
BEFORE, AFTER = "before: at least check, raw profile", "after: the fallback's own verdict, curves profile"


def judged_again(row: dict, profile) -> tuple[str, list[str]]:
    """The row's verdict by the session 38 rule: a handed-over result's own reasons (all but the hand-over line)
    judged again against ``profile``, the fold's training scans under contrast curves."""
    quality = row["quality"]
    if not made_by_fallback(quality["statistics"]):
        return row["verdict"], row["reasons"]
    verdict = rejudged({**quality, "reasons": quality["reasons"][1:]}, THRESHOLDS, profile)
    return verdict.verdict, verdict.reasons


def counts(rows: list[dict], key: str) -> str:
    """Bad and good results flagged (:func:`routing.flagged`) with the verdict under ``key``."""
    return " | ".join(routing.flagged([{**r, "verdict": r[key]} for r in rows]))


def main(run: str, splits: str, *data: str) -> None:
    cases = gather_cases([Path(d) for d in data])
    folds = {s["fold"]: s for s in json.loads(Path(splits).read_text())["folds"]}
    rows = [row for path in sorted(Path(run).glob("fold_*.json")) for row in json.loads(path.read_text())]
    for fold in sorted({row["fold"] for row in rows}):
        profile = training_profile([cases[name] for name in folds[fold]["train"]], None, CURVES)
        for row in (r for r in rows if r["fold"] == fold):
            row["before"], (row["after"], row["left"]) = row["verdict"], judged_again(row, profile)
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print("| rule | bad (< 0.80) flagged | good (>= 0.92) flagged |\n|---|---|---|")
    print(f"| {BEFORE} | {counts(rows, 'before')} |\n| {AFTER} | {counts(rows, 'after')} |\n")
    print("Per fold (after): " + "; ".join(f"fold {f}: {counts([r for r in rows if r['fold'] == f], 'after')}"
                                          for f in sorted({r['fold'] for r in rows})) + "\n")
    handed = [r for r in rows if made_by_fallback(r["quality"]["statistics"])]
    print(f"### The {len(handed)} handed-over results\n\n| data set | contrast | results | ok after | of them body-wise "
          "< 0.85 | lowest body-wise among ok | good (>= 0.92) | good ok after |\n|---|---|---|---|---|---|---|---|")
    for key in dict.fromkeys((r["dataset"], r["contrast"]) for r in handed):
        part = [r for r in handed if (r["dataset"], r["contrast"]) == key]
        passed = [r for r in part if r["after"] == "ok"]
        lowest = f"{100 * min(r['body_dice'] for r in passed):.1f} %" if passed else "-"
        good = [r for r in part if r["body_dice"] >= GOOD]
        print(f"| {key[0]} | {key[1]} | {len(part)} | {len(passed)} | {sum(r['body_dice'] < 0.85 for r in passed)} | "
              f"{lowest} | {len(good)} | {sum(r['after'] == 'ok' for r in good)} |")
    print("\n### Results whose verdict changed\n\n| case | contrast | fold | body-wise Dice | before | after | reasons "
          "left (after) |\n|---|---|---|---|---|---|---|")
    for r in sorted((r for r in rows if r["before"] != r["after"]), key=lambda r: r["body_dice"]):
        print(f"| {r['case']} | {r['contrast']} | {r['fold']} | {100 * r['body_dice']:.1f} % | {r['before']} | "
              f"{r['after']} | {'; '.join(r['left'])[:160]} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
