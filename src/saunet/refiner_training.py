"""Training of the outline refiner (:mod:`saunet.refinement`) on the scans' own in-plane grids, and its export.

Patches of one sagittal slice around the annotated bodies (of a scan drawn uniformly, or with ``balanced`` each data
set as often, as the level network's stacks are drawn); the loss counts only pixels within the refiner's
:data:`~saunet.refinement.RADIUS` of an annotated body (where it will decide), and in data sets that leave the
levels above their top one unannotated, nothing above that body (an unannotated T12 is not background).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet
from tqdm import tqdm

from saunet.config import REFINER_BATCH, REFINER_PATCH, check_refiner_patches
from saunet.datasets import Case, read_case
from saunet.errors import InputError
from saunet.files import atomic_path
from saunet.labels import LEVELS
from saunet.orientation import volume_layout
from saunet.preprocessing import normalise_intensities
from saunet.refinement import CLIP_PERCENTILES, RADIUS, in_plane_dilation
from saunet.training import augment, drawn_index, remap_contrast, vary_appearance

BODY_VALUES = list(LEVELS)  # the level table's values, 1 T11 ... 7 L5
JITTER = 16  # pixels a patch's centre lies off the body pixel it was drawn at
FEATURES = (8, 16, 32, 64, 128, 8)


def outline_net(features: tuple[int, ...] = FEATURES) -> torch.nn.Module:
    """MONAI's BasicUNet, 2D, of ``features`` (its six widths): (B, 1, H, W) one normalised sagittal slice ->
    (B, 1, H, W) body logit; H and W multiples of 16."""
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=features)


def canonical_case(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A case's normalised image, 0/1 body target and known-pixel mask, each (slices, superior, posterior)."""
    image, label = read_case(case)
    layout = volume_layout(image)
    array = normalise_intensities(layout.to_canonical(image.array), CLIP_PERCENTILES)
    body = np.isin(layout.to_canonical(label.array), BODY_VALUES)
    known = in_plane_dilation(body, RADIUS)
    if case.annotated is not None and min(case.annotated) > 1:
        rows = np.arange(body.shape[1])
        top = np.where(body.any(2), rows[None], -1).max(1)  # the top annotated body's highest row, per slice
        known &= rows[None, :, None] <= top[:, None, None] + 2
    return array, body, known


def patch(plane: np.ndarray, row: int, column: int, size: int = REFINER_PATCH) -> np.ndarray:
    """The ``size`` x ``size`` window of ``plane`` centred at (row, column), padded beyond its edges."""
    half = size // 2
    padded = np.pad(plane, half, mode="constant" if plane.dtype == bool else "edge")
    return padded[row:row + size, column:column + size]


def batches(cases: list[tuple[np.ndarray, ...]], rng: np.random.Generator, data_sets: list[str] | None = None,
            size: int = REFINER_PATCH, batch: int = REFINER_BATCH):
    """Endless (images, targets, known) batches of (``batch``, 1, 1, ``size``, ``size``) patches centred near a
    random body pixel of a case drawn uniformly, or, given each case's data set, as the level network draws its
    stacks: each data set equally often (:func:`saunet.training.drawn_index`)."""
    places = [np.argwhere(body) for _, body, _ in cases]
    while True:
        drawn = []
        chosen = (rng.integers(len(cases), size=batch) if data_sets is None
                  else (drawn_index(data_sets, rng) for _ in range(batch)))
        for i in chosen:
            s, r, c = places[i][rng.integers(len(places[i]))] + np.r_[0, rng.integers(-JITTER, JITTER + 1, 2)]
            shape = cases[i][0].shape
            r, c = int(np.clip(r, 0, shape[1] - 1)), int(np.clip(c, 0, shape[2] - 1))
            drawn.append([patch(array[int(s)], r, c, size) for array in cases[i]])
        images, targets, known = (torch.from_numpy(np.stack(a)[:, None, None]) for a in zip(*drawn))
        yield images.float(), targets.float(), known


def masked_loss(logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """BCE over the known pixels plus one minus their batch Dice."""
    weight = known.float()
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum() / weight.sum().clamp_min(1)
    p = torch.sigmoid(logits) * weight
    dice = (2 * (p * target).sum() + 1e-5) / (p.sum() + (target * weight).sum() + 1e-5)
    return bce + 1 - dice


def train_refiner(cases: list[Case], steps: int, out: Path, seed: int = 0, progress: bool = True,
                  balanced: bool = False, features: tuple[int, ...] = FEATURES, contrast_curves: float = 0.0,
                  size: int = REFINER_PATCH, batch: int = REFINER_BATCH) -> Path:
    """Train on ``cases`` for ``steps`` batches (AdamW, polynomial decay), saving ``out/refiner.pt`` every 100
    steps (a run resumes from it), then export ``out/refiner.onnx``; returns the ONNX file. ``balanced``: each data
    set drawn as often as every other (not the shipped recipe: reports/levels/refine/README.md), else each case;
    ``features``: :func:`outline_net`'s; ``contrast_curves``: the share of patches given a random intensity curve
    (:func:`saunet.training.remap_contrast`); ``size``, ``batch``: each step's patches' side in pixels (a multiple of
    16) and their number."""
    check_refiner_patches(size, batch)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    prepared = [canonical_case(case) for case in tqdm(cases, desc="reading", disable=None if progress else True)]
    net = outline_net(features)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (1 - step / steps) ** 0.9)
    out.mkdir(parents=True, exist_ok=True)
    start = 0
    if (out / "refiner.pt").exists():
        saved = torch.load(out / "refiner.pt")
        held = tuple(saved.get("features", FEATURES))  # runs from before the options are of the default recipe
        if held != tuple(features):
            raise InputError(out / "refiner.pt", f"holds a refiner of features {held}, not {tuple(features)}")
        drawn = saved.get("patch", REFINER_PATCH), saved.get("batch", REFINER_BATCH)
        if drawn != (size, batch):
            raise InputError(out / "refiner.pt", f"was trained on {drawn[1]} patches of {drawn[0]} pixels a step, "
                                                 f"not {batch} of {size}")
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        start, rng = saved["step"], np.random.default_rng([seed, saved["step"]])
    data_sets = [case.dataset for case in cases] if balanced else None
    stream, losses, started = batches(prepared, rng, data_sets, size, batch), [], time.time()
    net.train()
    for step in tqdm(range(start, steps), desc="training the refiner", disable=None if progress else True):
        images, targets, known = next(stream)
        images, targets, known = augment(images, targets, rng, known=known)
        images = vary_appearance(images, rng)
        if contrast_curves:
            images = remap_contrast(images, rng, contrast_curves)
        loss = masked_loss(net(images[:, :, 0]), targets[:, :, 0], known[:, :, 0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == steps:
            state = {"net": net.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                     "step": step + 1, "seed": seed, "features": features, "balanced": balanced,
                     "contrast_curves": contrast_curves, "patch": size, "batch": batch,
                     "cases": [c.name for c in cases],
                     "loss": float(np.mean(losses[-100:])), "seconds": time.time() - started}
            with atomic_path(out / "refiner.pt") as tmp:
                torch.save(state, tmp)
    return export_refiner(net, out / "refiner.onnx")


def export_refiner(net: torch.nn.Module, path: Path) -> Path:
    """ONNX export with dynamic batch, height and width (input ``slices``, output ``logits``)."""
    axes = {0: "slices", 2: "height", 3: "width"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constant folding say nothing to a user
        torch.onnx.export(net.eval(), (torch.zeros(2, 1, 64, 80),), str(tmp), dynamo=False, input_names=["slices"],
                          output_names=["logits"], dynamic_axes={"slices": axes, "logits": axes})
    return path
