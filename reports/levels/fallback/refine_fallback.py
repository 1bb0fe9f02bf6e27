"""Whether the outline refiner should redraw the fallback's result too (session 36): the scans the first model's
saved rows hand over, scored with the fallback's result unrefined (A, as `saunet segment` runs it), always refined
(B), and refined unless the bodies' intensities were unlike the training scans' (C). The fallback's rows: two
``qc_calibration`` runs of the same fallback fold models, without and with ``--refine``.

    python reports/levels/fallback/refine_fallback.py FIRST PLAIN REFINED > reports/levels/fallback/refine-fallback.md
"""

import sys
from pathlib import Path

from routing import BAD, GOOD, SCORES, contrast_unlike, flagged_counts, qc_rows, routed_rows

from saunet.experiments.reports import metrics_table, paired_table

ROUTED = "ensemble + fallback"


def variants(first: dict, plain: dict, refined: dict) -> dict[str, list[dict]]:
    """Each variant's routed rows, for the scans both fallback runs segmented."""
    first = {key: row for key, row in first.items() if key in plain and key in refined}
    mixed = {key: plain[key] if contrast_unlike(first[key]) else refined[key] for key in first}
    return {name: [{**row, "model": name} for row in routed_rows(first, fallback) if row["model"] == ROUTED]
            for name, fallback in (("A unrefined", plain), ("B refined", refined), ("C refined unless unlike", mixed))}


def main(first: str, plain: str, refined: str) -> None:
    routed = variants(qc_rows(Path(first)), qc_rows(Path(plain)), qc_rows(Path(refined)))
    print(f"Command: `python reports/levels/fallback/refine_fallback.py {first} {plain} {refined}`\n")
    rows = [row for variant in routed.values() for row in variant]
    for contrast in dict.fromkeys(row["contrast"] for row in rows):
        handed = [row for row in rows if row["contrast"] == contrast and row["handed"]]
        print(f"### {contrast}: the {len(handed) // len(routed)} handed-over scans, both data sets\n")
        print(metrics_table(handed, "model", None, SCORES) + "\n")
        for name in list(routed)[1:]:
            print(paired_table(handed, name, "A unrefined", SCORES) + "\n")
    print(f"### Quality control on the whole path, these scans (bad < {BAD}, good >= {GOOD})\n\n{flagged_counts(rows)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
