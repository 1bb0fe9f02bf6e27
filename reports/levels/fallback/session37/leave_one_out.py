"""How often a scan of a training data set is called unlike the training scans by a profile of all the others
(leave one out; each scan's statistics on its expert bodies): the false alarms to expect of the shipped model's
profile (all 52 scans) on new scans of the same protocols.

    python reports/levels/fallback/session37/leave_one_out.py ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat \
        > reports/levels/fallback/session37/leave-one-out.md
"""

import sys
from pathlib import Path

from saunet.crossval import gather_cases
from saunet.quality import INTENSITY, case_statistics, profile_of, unfamiliar


def main() -> None:
    cases = gather_cases([Path(folder) for folder in sys.argv[1:]])
    statistics = {name: case_statistics(case) for name, case in cases.items()}
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print("| scan | data set | " + " | ".join(k.replace("_", " ") for k in INTENSITY) + " | unlike the others |")
    print("|---|---|" + "---|" * (len(INTENSITY) + 1))
    unlike = {}
    for name, case in cases.items():
        others = [n for n in cases if n != name]
        profile = profile_of([statistics[n] for n in others], [cases[n].dataset for n in others])
        unlike[name] = unfamiliar(statistics[name], profile)
        values = " | ".join(f"{statistics[name][k]:.2f}" for k in INTENSITY)
        print(f"| {name} | {case.dataset} | {values} | {'; '.join(unlike[name]) or 'no'} |")
    for dataset in sorted({case.dataset for case in cases.values()}):
        mine = [name for name, case in cases.items() if case.dataset == dataset]
        print(f"\n{dataset}: {sum(bool(unlike[n]) for n in mine)} of {len(mine)} called unlike the others.", end="")
    print()


if __name__ == "__main__":
    main()
