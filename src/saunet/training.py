"""Training: slice-stack sampling, augmentation, the loop, checkpoints that resume, and DDP.

A checkpoint holds everything inference needs (model name and arguments, preprocessing, label map), and
only tensors and plain Python values, so it loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from saunet.datasets import Case, LabelMap, read_case
from saunet.models import create, full_arguments
from saunet.orientation import volume_layout
from saunet.preprocessing import PreprocessingSettings, Preprocessor

CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    model: str = "sau-net"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 20
    steps_per_epoch: int = 40
    # Independent stacks per step: neighbouring slices are nearly alike, so more stacks beat longer ones.
    # 0 chooses 4 stacks of 3 slices for the 2D models and 1 patch of 16 slices for unet3d: similar voxels per step.
    batch_size: int = 0
    stack: int = 0  # consecutive slices per sample; 0 chooses 16 for unet3d and 3 otherwise (ISA's i-1, i, i+1)
    patch: int = 160  # in-plane crop, pixels on the network grid
    lr: float = 1e-4  # the paper's Adam learning rate
    loss: str = "bce"  # the paper's; "dice-bce" adds a soft Dice term
    seed: int = 0
    bf16: bool = False  # bfloat16 autocast (CPU) / AMP (GPU)
    augment: bool = True
    # Train on the fraction of each network-grid pixel a class covers (area-resampled masks) instead of a
    # nearest-neighbour label: a nearest-resampled lumbar-t2 mask sent back to the native grid has Dice 0.963
    # against the original, the area fractions 0.993.
    soft_labels: bool = False
    in_plane_spacing: float | None = PreprocessingSettings.in_plane_spacing
    slice_axis: int | None = None  # None: found from each image's orientation
    classes: tuple[int, ...] | None = None  # None: binary, any label > 0

    def __post_init__(self):
        if self.loss not in ("bce", "dice-bce"):
            raise ValueError(f"unknown loss {self.loss!r}; choose bce or dice-bce")

    @property
    def stacks_per_step(self) -> int:
        return self.batch_size or (1 if self.model == "unet3d" else 4)

    @property
    def slices_per_stack(self) -> int:
        return self.stack or (16 if self.model == "unet3d" else 3)

    @property
    def preprocessing(self) -> PreprocessingSettings:
        return PreprocessingSettings(in_plane_spacing=self.in_plane_spacing)

    @property
    def label_map(self) -> LabelMap:
        return LabelMap(self.classes)


@dataclass
class PreparedCase:
    name: str
    image: np.ndarray  # float32 (D, H, W) on the network grid
    label: np.ndarray  # uint8 (D, H, W), classes 0..K
    components: int = 0  # connected components of the foreground on the label's own grid
    fractions: np.ndarray | None = None  # float32 (K, D, H, W): the share of each pixel classes 1..K cover


def foreground_onehot(labels: np.ndarray, classes: int) -> np.ndarray:
    """Labels 0..K -> float32 (K, *shape): one channel per class 1..K, background left implicit."""
    return np.stack([labels == k for k in range(1, classes + 1)]).astype(np.float32)


def class_fractions(labels: np.ndarray, classes: int, grid, preprocessor: Preprocessor) -> np.ndarray:
    """(K, D, H', W') share of each network-grid pixel that classes 1..K of ``labels`` (classes 0..K on the
    native grid) cover, resampled as images are."""
    return np.stack([preprocessor.image_like(channel, grid) for channel in foreground_onehot(labels, classes)])


def component_count(label: np.ndarray) -> int:
    """Connected components of a label map's foreground."""
    from saunet.inference import label_components

    return int(label_components(label > 0).max())


def typical_component_count(cases: list[Case], label_map: LabelMap) -> int:
    """Median number of connected components in the cases' foreground masks (lumbar-t2: 7, its masks label the
    bodies T11-L5 only); post-processing keeps that many of the largest predicted components, so a model does
    not add a body the data set's convention leaves out (a T10 partly in the field of view)."""
    from saunet.imageio import read_volume

    return int(np.median([component_count(label_map.apply(read_volume(case.label).array)) for case in cases]))


def prepare_cases(cases: list[Case], config: TrainConfig, progress: bool = True) -> list[PreparedCase]:
    preprocessor = Preprocessor(config.preprocessing)
    prepared = []
    for case in tqdm(cases, desc="loading", disable=None if progress else True, leave=False):
        image, label = read_case(case)
        grid = preprocessor.grid(image.array.shape, image.spacing, volume_layout(image, config.slice_axis))
        labels = config.label_map.apply(label.array)
        fractions = (class_fractions(labels, config.label_map.out_channels, grid, preprocessor)
                     if config.soft_labels else None)
        prepared.append(PreparedCase(case.name, preprocessor.image(image.array, grid), preprocessor.label(labels, grid),
                                     component_count(labels), fractions))
    return prepared


def output_channels(label_map: LabelMap) -> int:
    """One sigmoid channel for the binary task, else softmax over background and K classes."""
    return 1 if label_map.classes is None else label_map.out_channels + 1


def sample_batch(cases: list[PreparedCase], config: TrainConfig, rng: np.random.Generator):
    """Random stacks of consecutive slices with in-plane crops: (B, 1, S, P, P) images and (B, K, S, P, P)
    float targets for classes 1..K (one-hot labels, or the cases' fractions with ``soft_labels``)."""
    classes = config.label_map.out_channels
    images, targets = [], []
    for _ in range(config.stacks_per_step):
        case = cases[rng.integers(len(cases))]
        d, h, w = case.image.shape
        s = min(config.slices_per_stack, d)
        start = rng.integers(d - s + 1)
        # Prefer crops that hold foreground, as nnU-Net oversamples it.
        fg = np.argwhere(case.label[start : start + s] > 0)
        if len(fg) and rng.random() < 0.67:
            cy, cx = fg[rng.integers(len(fg))][1:]
        else:
            cy, cx = rng.integers(h), rng.integers(w)
        y0 = int(np.clip(cy - config.patch // 2, 0, max(0, h - config.patch)))
        x0 = int(np.clip(cx - config.patch // 2, 0, max(0, w - config.patch)))
        window = (slice(start, start + s), slice(y0, y0 + config.patch), slice(x0, x0 + config.patch))
        image = case.image[window]
        if case.fractions is not None:
            target = case.fractions[(slice(None), *window)]
        else:
            target = foreground_onehot(case.label[window], classes)
        pad = [(0, config.slices_per_stack - s), (0, config.patch - image.shape[1]), (0, config.patch - image.shape[2])]
        images.append(np.pad(image, pad, constant_values=float(case.image.min())))
        targets.append(np.pad(target, [(0, 0), *pad]))
    return torch.from_numpy(np.stack(images))[:, None], torch.from_numpy(np.stack(targets))


def augment(images: torch.Tensor, targets: torch.Tensor, rng: np.random.Generator, soft: bool = False):
    """Anatomy-preserving augmentation of (B, 1, S, P, P) stacks and their (B, K, S, P, P) targets: in-plane
    rotation (+-10 deg) and scale (0.9-1.1), the same for every slice of a stack; left-right mirror (slice
    order); intensity scale/shift. Targets are resampled bilinearly if ``soft``, else nearest (stay 0 or 1)."""
    b, _, s, p, _ = images.shape
    theta = np.zeros((b, 2, 3), dtype=np.float32)
    for i in range(b):
        angle, scale = math.radians(rng.uniform(-10, 10)), rng.uniform(0.9, 1.1)
        theta[i, :, :2] = [[math.cos(angle) / scale, -math.sin(angle) / scale],
                           [math.sin(angle) / scale, math.cos(angle) / scale]]
    theta_t = torch.from_numpy(theta).repeat_interleave(s, dim=0)
    grid = F.affine_grid(theta_t, (b * s, 1, p, p), align_corners=False)
    flat = lambda t: t.transpose(1, 2).reshape(b * s, t.shape[1], p, p).float()  # noqa: E731
    unflat = lambda t: t.reshape(b, s, t.shape[1], p, p).transpose(1, 2)  # noqa: E731
    images = unflat(F.grid_sample(flat(images), grid, mode="bilinear", padding_mode="border", align_corners=False))
    targets = unflat(F.grid_sample(flat(targets), grid, mode="bilinear" if soft else "nearest", align_corners=False))
    mirror = torch.from_numpy(rng.random(b) < 0.5)
    images[mirror] = images[mirror].flip(2)
    targets[mirror] = targets[mirror].flip(2)
    gain = torch.from_numpy(rng.uniform(0.85, 1.15, (b, 1, 1, 1, 1)).astype(np.float32))
    shift = torch.from_numpy(rng.uniform(-0.15, 0.15, (b, 1, 1, 1, 1)).astype(np.float32))
    return images * gain + shift, targets


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """BCE (binary, one channel) or cross-entropy (K+1 channels) against (B, K, ...) targets for classes 1..K
    (0/1 or fractions; background is what they leave), plus soft Dice for 'dice-bce'."""
    if logits.shape[1] == 1:
        loss = F.binary_cross_entropy_with_logits(logits, target)
        probs = torch.sigmoid(logits)
    else:
        background = (1 - target.sum(1, keepdim=True)).clamp(min=0)
        loss = F.cross_entropy(logits, torch.cat([background, target], 1))
        probs = torch.softmax(logits, 1)[:, 1:]
    if kind == "dice-bce":
        dims = tuple(range(2, logits.ndim))
        dice = (2 * (probs * target).sum(dims) + 1) / (probs.sum(dims) + target.sum(dims) + 1)
        loss = loss + 1 - dice.mean()
    return loss


def predict_network_grid(model: torch.nn.Module, image: np.ndarray, bf16: bool = False) -> torch.Tensor:
    """Probabilities (K, D, H, W) of foreground classes for a prepared (D, H, W) image."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(torch.from_numpy(image)[None, None].to(device)).float()[0].cpu()
    return torch.sigmoid(logits) if logits.shape[0] == 1 else torch.softmax(logits, 0)[1:]


def dice_on_grid(probs: torch.Tensor, label: np.ndarray) -> float:
    """Mean Dice over foreground classes of thresholded / arg-maxed probabilities."""
    if probs.shape[0] == 1:
        preds = [(probs[0] > 0.5).numpy()]
    else:
        best = probs.argmax(0).numpy() + 1
        best[probs.max(0).values.numpy() < 0.5] = 0
        preds = [best == k for k in range(1, probs.shape[0] + 1)]
    scores = []
    for k, pred in enumerate(preds, start=1):
        ref = label == k
        total = pred.sum() + ref.sum()
        scores.append(1.0 if total == 0 else 2 * float((pred & ref).sum()) / float(total))
    return float(np.mean(scores))


def training_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, cases: list[PreparedCase],
                  config: TrainConfig, rng: np.random.Generator, device: torch.device) -> float:
    """One optimiser step on a freshly sampled (and augmented) batch; returns the loss."""
    images, targets = sample_batch(cases, config, rng)
    if config.augment:
        images, targets = augment(images, targets, rng, config.soft_labels)
    images, targets = images.to(device), targets.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
        logits = net(images)
    loss = segmentation_loss(logits.float(), targets, config.loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    from saunet.errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(path, f"not a readable saunet checkpoint ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "not a saunet checkpoint")
    return checkpoint


def model_from_checkpoint(checkpoint: dict) -> torch.nn.Module:
    model = create(checkpoint["model"], **checkpoint["model_kwargs"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def train(
    config: TrainConfig,
    train_cases: list[Case],
    val_cases: list[Case],
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train ``config.model``; writes checkpoint_last.pt, checkpoint_best.pt and metrics.csv in ``out_dir``.

    With ``resume`` it continues from checkpoint_last.pt. Returns the last checkpoint's summary.
    """
    out_dir = Path(out_dir)
    rank, world = _distributed()
    torch.manual_seed(config.seed)
    train_data = prepare_cases(train_cases, config, progress and rank == 0)
    val_data = prepare_cases(val_cases, config, progress and rank == 0)
    model_kwargs = full_arguments(config.model, out_channels=output_channels(config.label_map), **config.model_kwargs)
    # the same as typical_component_count(train_cases), from the labels prepare_cases has read already
    postprocessing = {"max_components": int(np.median([case.components for case in train_data]))}
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    model = create(config.model, **model_kwargs).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start_epoch, best_dice, history = 0, -1.0, []
    last_path = out_dir / "checkpoint_last.pt"
    if resume and last_path.exists():
        checkpoint = load_checkpoint(last_path)
        model.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch, best_dice, history = checkpoint["epoch"], checkpoint["best_dice"], checkpoint["history"]
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if world > 1 else model
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint_dict(epoch: int) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": config.model,
            "model_kwargs": model_kwargs,
            "preprocessing": {**config.preprocessing.to_dict(),
                              "clip_percentiles": list(config.preprocessing.clip_percentiles)},
            "label_map": config.label_map.to_dict(),
            "postprocessing": postprocessing,
            "slice_axis": config.slice_axis,
            "trained_on": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "best_dice": best_dice,
            "history": history,
        }

    for epoch in range(start_epoch, config.epochs):
        # Every epoch draws from its own seeded generator, so a resumed run samples what the original would have.
        rng = np.random.default_rng([config.seed, epoch, rank])
        torch.manual_seed(config.seed * 1000 + epoch)
        for group in optimizer.param_groups:  # nnU-Net's polynomial decay, a function of the epoch alone
            group["lr"] = config.lr * (1 - epoch / config.epochs) ** 0.9
        net.train()
        started, losses = time.time(), []
        bar = tqdm(range(config.steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=None if progress and rank == 0 else True, leave=False)
        for _ in bar:
            losses.append(training_step(net, optimizer, train_data, config, rng, device))
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
        train_seconds = time.time() - started
        if rank == 0:
            val_dice = float(np.mean([dice_on_grid(predict_network_grid(model, c.image, config.bf16), c.label)
                                      for c in val_data])) if val_data else float("nan")
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_dice": val_dice,
                            "seconds": train_seconds})
            if not val_data or val_dice > best_dice:
                best_dice = val_dice if val_data else best_dice
                save_atomic(checkpoint_dict(epoch + 1), out_dir / "checkpoint_best.pt")
            save_atomic(checkpoint_dict(epoch + 1), last_path)
            write_history(history, out_dir / "metrics.csv")
            if progress:
                tqdm.write(f"{out_dir.name} epoch {epoch + 1}/{config.epochs}: loss {np.mean(losses):.4f}"
                           f"  val Dice {val_dice:.4f}  {train_seconds:.0f} s")
        if world > 1:
            torch.distributed.barrier()
    if world > 1:
        fingerprint = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
        (out_dir / f"rank{rank}_weights.txt").write_text(
            f"{fingerprint.sum().item():.10e} {fingerprint.abs().sum().item():.10e} {fingerprint.square().sum().item():.10e}\n")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return {"epochs": config.epochs, "best_val_dice": best_dice, "history": history}


def write_history(history: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "train_loss", "val_dice", "seconds"])
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)
