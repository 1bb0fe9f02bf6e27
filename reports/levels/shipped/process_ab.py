"""`saunet segment` of one scan, whole process, this tree's code against another checkout's, in alternating rounds
(the order flipped every round): the median seconds of each, and whether their label maps are the same bytes.

    git worktree add /tmp/old HEAD~1
    python reports/levels/shipped/process_ab.py /tmp/old/src ../shared/data/lumbar-t2/imagesTr/lumbar_02_0000.nii.gz [ROUNDS]

The other checkout's package comes first on its process's PYTHONPATH; both use this environment's libraries.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seconds(scan: Path, out: Path, source: str | None) -> float:
    env = {**os.environ, "PYTHONPATH": source} if source else dict(os.environ)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "saunet.cli", "segment", str(scan), "-o", str(out)], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    other, scan = sys.argv[1], Path(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    with tempfile.TemporaryDirectory() as folder:
        outs = {"other": Path(folder) / "other.nii.gz", "this": Path(folder) / "this.nii.gz"}
        times = {"other": [], "this": []}
        for round_ in range(rounds):
            for name in ("other", "this") if round_ % 2 == 0 else ("this", "other"):
                times[name].append(seconds(scan, outs[name], other if name == "other" else None))
        same = outs["other"].read_bytes() == outs["this"].read_bytes()
    print(json.dumps({"median_seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
                      "seconds": {k: [round(t, 2) for t in v] for k, v in times.items()}, "same_label_map": same,
                      "rounds": rounds}))


if __name__ == "__main__":
    main()
