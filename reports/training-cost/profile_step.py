"""Profile (torch.profiler) or time one training step of a model on a 1x1x16x160x160 stack.

    python reports/training-cost/profile_step.py profile sau-net plain|cl
    python reports/training-cost/profile_step.py ROUNDS sau-net:no sau-net:cl unet3d:no    (one process, in turns)
"""

import statistics
import sys
import time

import torch

from saunet.models import create
from saunet.training import segmentation_loss


def runner(name: str, channels_last: bool):
    torch.manual_seed(0)
    model = create(name).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d if model.volumetric else torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(1, 1, 16, 160, 160)
    target = (torch.rand(1, 1, 16, 160, 160) > 0.7).float()

    def step():
        loss = segmentation_loss(model(x), target, "bce")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


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
