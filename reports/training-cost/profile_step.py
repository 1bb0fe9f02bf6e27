"""Profile (torch.profiler) or time one training step of a model on a 1x1x16x160x160 stack.

    python reports/training-cost/profile_step.py profile sau-net plain|cl
    python reports/training-cost/profile_step.py ROUNDS sau-net:no sau-net:cl unet3d:no    (one process, in turns)

The same step as `saunet benchmark` times (its _training_runner). Channels-last applies to the 2D models only
(`training_form`); the 3D U-Net channels-last-3D figure in ../speed-ups.md was taken with this script at 8982bf9.
"""

import statistics
import sys
import time

from saunet.experiments.benchmark import TRAIN_STACK, _training_runner


def runner(name: str, channels_last: bool):
    """One training step of ``name`` on the benchmark's stack, plain NCHW or in the training form."""
    return _training_runner(name, TRAIN_STACK, channels_last=channels_last)


if __name__ == "__main__":
    if sys.argv[1] == "profile":
        step = runner(sys.argv[2], sys.argv[3] == "cl")
        step()
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    else:
        configs = [(n, cl == "cl") for n, cl in (a.split(":") for a in sys.argv[2:])]
        steps = [runner(n, cl) for n, cl in configs]
        for step in steps:
            step()
        times = {c: [] for c in configs}
        for _ in range(int(sys.argv[1])):
            for c, step in zip(configs, steps):
                started = time.perf_counter()
                step()
                times[c].append(time.perf_counter() - started)
        for c in configs:
            ratio = statistics.median(a / b for a, b in zip(times[c], times[configs[-1]]))
            print(c, f"median {statistics.median(times[c]):.3f} s, ratio to the last {ratio:.3f}")
