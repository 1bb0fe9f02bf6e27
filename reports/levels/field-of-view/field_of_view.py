"""Names when the field of view ends within the lumbar spine: the whole path (``qc_calibration --refine --fallback``)
on every CV scan cropped at the centre of L5 (no sacrum in view) or of L1 (nothing above it), per expert body in
view, against the same path on the scans as they are.

    python reports/levels/field-of-view/field_of_view.py runs/fov39 runs/whole38/predictions \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat > reports/levels/field-of-view/field-of-view.md
"""

import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import FOUND_DICE, body_scores
from saunet.experiments.qc_calibration import predictions_folder
from saunet.experiments.thick_slices import FIELD_CUTS, scan_variant
from saunet.imageio import read_volume
from saunet.labels import LEVELS
from saunet.quality import made_by_fallback


def prediction(folder: Path, case: str) -> np.ndarray:
    return read_volume(next(iter(sorted(folder.glob(f"{case}.*"))))).array


def body_rows(run: Path, baseline: Path, cases: dict) -> list[dict]:
    """Per cropped scan and expert body in view: its Dice and name there and on the uncropped scan."""
    rows = []
    for fold in sorted(run.glob("fold_*.json")):
        for row in json.loads(fold.read_text()):
            if row["contrast"] not in FIELD_CUTS:
                continue
            image, label = read_case(cases[row["case"]])
            reference = scan_variant(image, label, row["contrast"])[1].array
            cropped = prediction(run / predictions_folder(row["contrast"]), row["case"])
            whole = {v: (d, n) for v, d, n in body_scores(prediction(baseline, row["case"]), label.array)}
            for value, dice, named in body_scores(cropped, reference):
                rows.append({"case": row["case"], "dataset": row["dataset"], "variant": row["contrast"],
                             "level": value, "cut": value == FIELD_CUTS[row["contrast"]][0], "dice": dice,
                             "named": named, "dice_whole": whole[value][0], "named_whole": whole[value][1],
                             "verdict": row["verdict"], "handed_over": made_by_fallback(row["quality"]["statistics"])})
    return rows


def share(flags) -> str:
    return f"{100 * np.mean(list(flags)):.1f} %" if len(flags) else "-"


def summary_line(rows: list[dict], dataset: str, variant: str) -> str:
    mine = [r for r in rows if r["dataset"] == dataset and r["variant"] == variant]
    whole, cut = [r for r in mine if not r["cut"]], [r for r in mine if r["cut"]]
    scans = {r["case"]: r for r in mine}.values()
    misnamed = {r["case"] for r in whole if r["named"] != r["level"]}
    cells = [dataset, variant, str(len(scans)), str(len(whole)),
             share([r["named"] == r["level"] for r in whole]), share([r["named_whole"] == r["level"] for r in whole]),
             f"{100 * np.mean([r['dice'] for r in whole]):.2f} %", f"{100 * np.mean([r['dice_whole'] for r in whole]):.2f} %",
             share([r["dice"] >= FOUND_DICE for r in whole]),
             share([r["named"] == r["level"] for r in cut]), f"{100 * np.mean([r['dice'] for r in cut]):.2f} %",
             str(sum(r["handed_over"] for r in scans)),
             " / ".join(f"{sum(r['verdict'] == v for r in scans)}" for v in ("ok", "check", "fail")),
             f"{len(misnamed)} ({sum(r['verdict'] == 'ok' for r in scans if r['case'] in misnamed)})"]
    return "| " + " | ".join(cells) + " |"


def misnamed_lines(rows: list[dict]) -> list[str]:
    """One line per cropped scan with a whole body misnamed: its names against the expert's."""
    lines = []
    for (case, variant) in sorted({(r["case"], r["variant"]) for r in rows}):
        mine = sorted((r for r in rows if r["case"] == case and r["variant"] == variant), key=lambda r: r["level"])
        if any(r["named"] != r["level"] and not r["cut"] for r in mine):
            names = ", ".join(f"{LEVELS.get(r['level'], r['level'])}->{LEVELS.get(r['named'], 'none')}"
                              + ("" if r["named_whole"] == r["level"] else " (uncropped too)") for r in mine)
            lines.append(f"| {case} | {variant} | {mine[0]['verdict']} | {names} |")
    return lines


def main() -> None:
    run, baseline = Path(sys.argv[1]), Path(sys.argv[2])
    rows = body_rows(run, baseline, gather_cases([Path(p) for p in sys.argv[3:]]))
    print("# Names when the field of view ends within the lumbar spine\n")
    print(f"`python {' '.join(sys.argv)}`\n")
    print("Whole bodies: the expert bodies wholly in view; the cut body: the one the crop halves (L5 for cut-below, "
          "L1 for cut-above). 'as it is': the same bodies on the uncropped scan, same path and fold models.\n")
    print("| data set | crop | scans | whole bodies | named | named as it is | body-wise Dice | as it is | found "
          "| cut body named | cut body Dice | handed over | ok / check / fail | scans misnaming a whole body (of them ok) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for dataset in sorted({r["dataset"] for r in rows}):
        for variant in FIELD_CUTS:
            print(summary_line(rows, dataset, variant))
    print("\n## Scans with a whole body misnamed\n")
    print("| scan | crop | verdict | expert -> map |\n|---|---|---|---|")
    print("\n".join(misnamed_lines(rows)))


if __name__ == "__main__":
    main()
