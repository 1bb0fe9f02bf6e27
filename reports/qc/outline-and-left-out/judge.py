"""Quality control's verdicts on saved cross-validated rows (``qc_calibration --refine``), judged as before
session 34 (no outline signal, every flag of a body raises the scan) and as today (the refiner's and the level
network's outlines of a body parting raise the scan; a refined body's own level votes flag only the body). No model
run.

    python reports/qc/outline-and-left-out/judge.py reports/qc/outline-and-left-out > reports/qc/outline-and-left-out/judged.md

The variants B and "both signals" of ``variants-bcd8a60.md`` (with the left-out-body signal, since removed) came from
this script at commit bcd8a60.
"""

import json
import sys
from pathlib import Path

from saunet.quality import THRESHOLDS, rejudged

GOOD, BAD = 0.92, 0.80  # issue 19's lines: body-wise Dice of results that must not / must be flagged
VARIANTS = {"before (no outline signal)": False, "today: outline agreement; a refined body's own votes flag only the body": True}


def verdict_of(row: dict, outline: bool):
    """The saved verdict judged again by today's code, without the outline signal unless ``outline``: a body without
    it is judged as before (its votes raise the scan)."""
    quality = row["quality"]
    if not outline:
        quality = {**quality, "bodies": [{k: v for k, v in b.items() if k != "outline_agreement"} for b in quality["bodies"]]}
    return rejudged(quality, THRESHOLDS)


def main(folder: Path) -> None:
    rows = [row for path in sorted(folder.glob("fold_*.json")) for row in json.loads(path.read_text())]
    good = [r for r in rows if r["body_dice"] >= GOOD]
    bad = [r for r in rows if r["body_dice"] < BAD]
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print(f"{len(rows)} results of folds {sorted({r['fold'] for r in rows})}; {len(good)} good (body-wise Dice >= "
          f"{GOOD}), {len(bad)} bad (< {BAD}).\n")
    print("| quality control | good results flagged | bad results flagged | good flagged | bad not flagged |")
    print("|---|---|---|---|---|")
    for name, outline in VARIANTS.items():
        flagged = [r for r in good if verdict_of(r, outline).verdict != "ok"]
        missed = [r for r in bad if verdict_of(r, outline).verdict == "ok"]
        show = lambda found: ", ".join(f"{r['case']} {r['contrast']}" for r in found) or "-"  # noqa: E731
        print(f"| {name} | {len(flagged)} of {len(good)} | {len(bad) - len(missed)} of {len(bad)} | {show(flagged)} "
              f"| {show(missed)} |")
    print("\nThe outline signal's reasons, per result:\n")
    print("| result | body-wise Dice | verdict | the outline signal's reasons |")
    print("|---|---|---|---|")
    for row in rows:
        verdict = verdict_of(row, True)
        new = [r for r in verdict.reasons if "outline in doubt" in r]
        if new:
            print(f"| {row['case']} {row['contrast']} | {row['body_dice']:.3f} | {verdict.verdict} | {'; '.join(new)} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
