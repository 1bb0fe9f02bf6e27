"""Where a training step's time goes on one machine: sampling the batch (CPU), augmenting it (on the device) and
the model's forward, backward and Adam step (on the device), each timed alone over the same batches; then whole
steps with the batches drawn in the training process and, with ``--loader-workers N``, drawn ahead by N processes.

    PYTHONPATH=src python3 reports/levels/gpu/step_profile.py --packed .gpu --steps 40 --batch-size 16 --loader-workers 6
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from train_gpu import SHIPPED_RECIPE, load_cases, stand_in_modules


def timed(fn, steps: int, synchronise) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls, after two untimed ones."""
    for _ in range(2):
        fn()
    synchronise()
    started = time.time()
    for _ in range(steps):
        fn()
    synchronise()
    return (time.time() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packed", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--loader-workers", type=int, default=0)
    args = parser.parse_args()
    stand_in_modules()
    import torch

    from saunet.config import TrainConfig
    from saunet.models import create, full_arguments
    from saunet.training import augment, sample_batch, segmentation_loss, training_batches, training_form, training_step

    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    synchronise = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    packed = json.loads((args.packed / "runs.json").read_text())
    cases = load_cases(args.packed)
    train = [cases[n] for n in packed["runs"]["fold_0"]["train"]]
    config = TrainConfig(**{**SHIPPED_RECIPE, "classes": tuple(packed["classes"]), "batch_size": args.batch_size})
    kwargs = full_arguments(config.model, out_channels=config.label_map.network_channels)
    model = training_form(create(config.model, **kwargs).to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(0)
    images, targets, known = (t.to(device) for t in sample_batch(train, config, rng))

    def forward_backward():
        loss = segmentation_loss(model(images).float(), targets, config.loss, known)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = {
        "sample_batch (CPU)": timed(lambda: sample_batch(train, config, rng), args.steps, synchronise),
        "augment (device)": timed(lambda: augment(images, targets, rng), args.steps, synchronise),
        "forward, backward, step (device)": timed(forward_backward, args.steps, synchronise),
    }
    for workers in sorted({0, args.loader_workers}):
        batches = training_batches(train, replace(config, loader_workers=workers), rng, [0, 0, 0], device.type == "cuda")
        seconds[f"whole step, {workers} loader workers"] = timed(
            lambda batches=batches: training_step(model, optimizer, next(batches), config, rng, device), args.steps,
            synchronise)
    print(f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, batch {args.batch_size}:")
    for what, value in seconds.items():
        print(f"  {what}: {value * 1000:.0f} ms")


if __name__ == "__main__":
    main()
