"""QC on the contrasts held out from every calibration (``qc_calibration.HELD_OUT``), the whole path run end to end:
per contrast and data set, body-wise Dice, bad and good results flagged, and results passed `ok` that misname a body,
under this session's rule (a handed-over result keeps the fallback's verdict) and session 37's (at least `check`).

    python reports/levels/fallback/session38/held_out.py runs/heldout38/qc_cases.json \
        > reports/levels/fallback/session38/held-out.md
"""

import json
import sys
from pathlib import Path

import numpy as np

from saunet.experiments.qc_calibration import BAD
from saunet.quality import made_by_fallback

sys.path.insert(0, str(Path(__file__).parents[1]))
import routing  # noqa: E402


def handed(row: dict) -> bool:
    return made_by_fallback(row["quality"]["statistics"])


def by_rule(row: dict, rule: str) -> dict:
    """``row`` with its verdict by ``rule``: "own" (session 38) or "at least check" (session 37)."""
    return {**row, "verdict": "check" if rule == "at least check" and handed(row) and row["verdict"] == "ok"
            else row["verdict"]}


def line(rows: list[dict], label: str) -> str:
    cells = [label, str(len(rows)), f"{100 * np.mean([r['body_dice'] for r in rows]):.2f} %",
             f"{100 * np.mean([r['bodies_named'] for r in rows]):.1f} %", str(sum(map(handed, rows)))]
    for rule in ("own", "at least check"):
        judged = [by_rule(r, rule) for r in rows]
        cells += [*routing.flagged(judged), str(sum(r["verdict"] == "ok" and r["bodies_named"] < 1 for r in judged))]
    return "| " + " | ".join(cells) + " |"


def main(cases: str) -> None:
    rows = json.loads(Path(cases).read_text())
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print("| contrast, data set | results | body-wise Dice | named | handed over | bad flagged (own verdict) | good "
          "flagged | `ok` misnamed | bad flagged (at least check) | good flagged | `ok` misnamed |")
    print("|" + "---|" * 11)
    for contrast in dict.fromkeys(r["contrast"] for r in rows):
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            print(line([r for r in rows if (r["contrast"], r["dataset"]) == (contrast, dataset)], f"{contrast}, {dataset}"))
    print(line(rows, "all"))
    print("\n### Bad results, and results passed `ok` that misname a body\n\n| case | contrast | body-wise Dice | named | "
          "handed over | verdict | first reasons |\n|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["body_dice"]):
        if r["body_dice"] < BAD or (r["verdict"] == "ok" and r["bodies_named"] < 1):
            print(f"| {r['case']} | {r['contrast']} | {100 * r['body_dice']:.1f} % | {100 * r['bodies_named']:.0f} % | "
                  f"{'yes' if handed(r) else 'no'} | {r['verdict']} | {'; '.join(r['reasons'])[:150]} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
