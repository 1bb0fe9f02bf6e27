"""Quality control's verdicts on saved cross-validated rows (``qc_calibration --refine``), judged four ways: as
before session 34 (neither new signal); with the two new signals (the level network's and the refiner's outlines
of a body parting; a body the run of levels left out voting for a name another body got); B, the two while a body's
own votes (low confidence, split votes) flag only the body, not the scan; C, as B with the outline signal alone.
No model run.

    python reports/qc/outline-and-left-out/judge.py runs/qc34-out > reports/qc/outline-and-left-out/judged.md

Each fold row's ``quality`` must hold the new signals (rows saved by today's ``qc_calibration``).
"""

import json
import sys
from dataclasses import replace
from pathlib import Path

from saunet.quality import THRESHOLDS, rejudged

GOOD, BAD = 0.92, 0.80  # issue 19's lines: body-wise Dice of results that must not / must be flagged
VOTES_TO_BODY = replace(THRESHOLDS, votes_raise_scan=False)
VARIANTS = {  # thresholds, and which new signals are read: (outline agreement, left-out body)
    "before (neither new signal)": (THRESHOLDS, (False, False)),
    "with both new signals": (THRESHOLDS, (True, True)),
    "B: both new signals; a body's own votes flag only the body": (VOTES_TO_BODY, (True, True)),
    "C: outline agreement; a body's own votes flag only the body": (VOTES_TO_BODY, (True, False)),
}


def read_signals(quality: dict, outline: bool, left_out: bool) -> dict:
    """A saved verdict with only the new signals named kept, as code without the others would have saved it."""
    bodies = [{k: v for k, v in b.items() if outline or k != "outline_agreement"} for b in quality["bodies"]]
    statistics = {**quality["statistics"], **({} if left_out else {"left_out_levels": None})}
    return {**quality, "bodies": bodies, "statistics": statistics}


def verdict_of(row: dict, thresholds, signals: tuple[bool, bool]):
    return rejudged(read_signals(row["quality"], *signals), thresholds)


def main(folder: Path) -> None:
    rows = [row for path in sorted(folder.glob("fold_*.json")) for row in json.loads(path.read_text())]
    good = [r for r in rows if r["body_dice"] >= GOOD]
    bad = [r for r in rows if r["body_dice"] < BAD]
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print(f"{len(rows)} results of folds {sorted({r['fold'] for r in rows})}; {len(good)} good (body-wise Dice >= "
          f"{GOOD}), {len(bad)} bad (< {BAD}).\n")
    print("| quality control | good results flagged | bad results flagged | good flagged | bad not flagged |")
    print("|---|---|---|---|---|")
    for name, (thresholds, new) in VARIANTS.items():
        flagged = [r for r in good if verdict_of(r, thresholds, new).verdict != "ok"]
        missed = [r for r in bad if verdict_of(r, thresholds, new).verdict == "ok"]
        show = lambda found: ", ".join(f"{r['case']} {r['contrast']}" for r in found) or "-"  # noqa: E731
        print(f"| {name} | {len(flagged)} of {len(good)} | {len(bad) - len(missed)} of {len(bad)} | {show(flagged)} "
              f"| {show(missed)} |")
    print("\nThe new signals' reasons, per result (with both signals):\n")
    print("| result | body-wise Dice | verdict | reasons from the new signals |")
    print("|---|---|---|---|")
    for row in rows:
        verdict = verdict_of(row, THRESHOLDS, (True, True))
        new = [r for r in verdict.reasons if "outline in doubt" in r or "left out of the run" in r]
        if new:
            print(f"| {row['case']} {row['contrast']} | {row['body_dice']:.3f} | {verdict.verdict} | {'; '.join(new)} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
