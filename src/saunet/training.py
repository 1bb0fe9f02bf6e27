"""Training: slice-stack sampling, augmentation, the loop in named steps, checkpoints that resume, and DDP.

:func:`train` is :func:`set_up` (data, model, optimiser, resumed state), then per epoch :func:`train_epoch`,
:func:`validate` and :func:`save_epoch`. Checkpoints are :class:`saunet.checkpoints.Checkpoint` records.
"""

from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from saunet.checkpoints import Checkpoint
from saunet.config import TrainConfig
from saunet.datasets import Case, read_case
from saunet.evaluation import overlap_metrics
from saunet.files import write_csv
from saunet.labels import LabelMap
from saunet.models import create, full_arguments
from saunet.orientation import volume_layout
from saunet.postprocessing import PostprocessingSettings, label_components
from saunet.preprocessing import CURVE_KNOTS, Preprocessor, random_curve
from saunet.quality import TrainingProfile, training_profile


@dataclass
class PreparedCase:
    name: str
    image: np.ndarray  # float32 (D, H, W) on the network grid
    label: np.ndarray  # uint8 (D, H, W), classes 0..K
    components: int = 0  # connected components of the foreground on the label's own grid
    fractions: np.ndarray | None = None  # float32 (K, D, H, W): the share of each pixel classes 1..K cover
    known: np.ndarray | None = None  # (K,) bool: the classes its data set annotates (None: all)
    dataset: str = ""
    slice_mm: float = 0.0  # slice spacing (0: unknown)
    # bool (D, H, W): where a level its data set does not annotate may lie (unannotated_region); None: anywhere
    unannotated: np.ndarray | None = None
    # uint8 (D, zH, zW): classes 0..K on a grid TrainConfig.target_zoom times finer in-plane (None: not trained so)
    fine_label: np.ndarray | None = None


def foreground_onehot(labels: np.ndarray, classes: int) -> np.ndarray:
    """Labels 0..K -> float32 (K, *shape): one channel per class 1..K, background left implicit."""
    return np.stack([labels == k for k in range(1, classes + 1)]).astype(np.float32)


def class_fractions(labels: np.ndarray, classes: int, grid, preprocessor: Preprocessor) -> np.ndarray:
    """(K, D, H', W') share of each network-grid pixel that classes 1..K of ``labels`` (classes 0..K on the
    native grid) cover, resampled as images are."""
    return np.stack([preprocessor.image_like(channel, grid) for channel in foreground_onehot(labels, classes)])


LEVEL_PITCH_MM = 40.0  # more than a lumbar body and its disc: how far each unannotated level may reach
REGION_MARGIN_MM = (15.0, 10.0, 25.0)  # beyond the annotated bodies: right-left, into them, antero-posterior


def unannotated_region(label: np.ndarray, known: np.ndarray | None, slice_mm: float, pixel_mm: float) -> np.ndarray | None:
    """Where the levels a data set leaves unannotated may lie, on a canonical (D, H, W) label grid (slices,
    towards superior, towards posterior): next to its annotated bodies, above them for the levels above the
    first annotated one (a water-fat scan's T12 and T11 above L1), below them for those after the last, one
    ``LEVEL_PITCH_MM`` per level, within the bodies' right-left and antero-posterior extent and a margin. None
    when every level is annotated. Elsewhere an unlabelled voxel is background for every level: without this,
    the marginal loss lets a model call a set's whole background "T11" unpunished, and it learns to."""
    if known is None or known.all():
        return None
    region = np.zeros(label.shape, bool)
    bodies = np.argwhere(label > 0)
    if not len(bodies):
        return ~region
    (s0, r0, c0), (s1, r1, c1) = bodies.min(0), bodies.max(0)
    side, into, front = (int(np.ceil(m / mm)) for m, mm in zip(REGION_MARGIN_MM, (slice_mm or pixel_mm, pixel_mm, pixel_mm)))
    annotated = np.flatnonzero(known)
    above, below = int(annotated[0]), len(known) - 1 - int(annotated[-1])
    reach = lambda levels: int(np.ceil(levels * LEVEL_PITCH_MM / pixel_mm))  # noqa: E731
    columns = (slice(max(0, s0 - side), s1 + side + 1), slice(None), slice(max(0, c0 - front), c1 + front + 1))
    if above:
        region[columns[0], max(0, r1 - into):r1 + reach(above) + 1, columns[2]] = True
    if below:
        region[columns[0], max(0, r0 - reach(below)):r0 + into + 1, columns[2]] = True
    return region


def component_count(label: np.ndarray) -> int:
    """Connected components of a label map's foreground."""
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
        label, known = preprocessor.label(labels, grid), config.label_map.known(case.annotated)
        fine = preprocessor.label(labels, grid, config.target_zoom) if config.target_zoom > 1 else None
        slice_mm = float(grid.native_spacing[0])
        prepared.append(PreparedCase(case.name, preprocessor.image(image.array, grid), label, component_count(labels),
                                     fractions, known, case.dataset, slice_mm,
                                     None if config.unannotated_anywhere else
                                     unannotated_region(label, known, slice_mm, grid.network_spacing[1]), fine))
    return prepared


def drawn_index(data_sets: list[str], rng: np.random.Generator) -> int:
    """The index of a random case, given each case's data set: with several data sets, first a data set (each
    equally often), then one of its cases, so a small set is not drowned by a large one."""
    sets = sorted(set(data_sets))
    if len(sets) == 1:
        return int(rng.integers(len(data_sets)))
    chosen = sets[rng.integers(len(sets))]
    members = [i for i, name in enumerate(data_sets) if name == chosen]
    return members[rng.integers(len(members))]


def draw_case(cases: list[PreparedCase], rng: np.random.Generator) -> PreparedCase:
    """A random case, each data set equally often (:func:`drawn_index`)."""
    return cases[drawn_index([case.dataset for case in cases], rng)]


def thick_slice_factor(case: PreparedCase, slices: int, config: TrainConfig, rng: np.random.Generator) -> int:
    """How many stored slices one sampled slice averages: 1 (the scan as stored), or, for a share
    ``config.thick_slices`` of the stacks, as many as make a slice 3-5 mm thick (clinical scans of other centres),
    at most as many as the scan holds for the stack."""
    if not config.thick_slices or case.slice_mm <= 0 or rng.random() >= config.thick_slices:
        return 1
    wanted = max(2, round(rng.uniform(3.0, 5.0) / case.slice_mm))
    return int(max(1, min(wanted, case.image.shape[0] // slices)))


def known_voxels(case: PreparedCase, classes: int, window: tuple, shape: tuple[int, ...]) -> np.ndarray:
    """(K, *shape) bool: where the case's labels say whether a voxel of ``window`` (of that shape) is class k."""
    annotated = case.known if case.known is not None else np.ones(classes, dtype=bool)
    known = np.broadcast_to(annotated.reshape(-1, *[1] * len(shape)), (classes, *shape))
    return known | ~case.unannotated[window] if case.unannotated is not None else known


def sample_window(case: PreparedCase, config: TrainConfig, rng: np.random.Generator) -> tuple[int, int, np.ndarray, tuple]:
    """Where one stack is taken from ``case``: its first stored slice, the stored slices per sampled slice
    (:func:`thick_slice_factor`), the sampled slices' middle stored slices, and the in-plane crop."""
    d, h, w = case.image.shape
    s = min(config.slices_per_stack, d)
    k = thick_slice_factor(case, s, config, rng)
    start = rng.integers(d - s * k + 1)
    middles = start + k // 2 + k * np.arange(s)
    # Prefer crops that hold foreground, as nnU-Net oversamples it.
    fg = np.argwhere(case.label[middles] > 0)
    if len(fg) and rng.random() < 0.67:
        cy, cx = fg[rng.integers(len(fg))][1:]
    else:
        cy, cx = rng.integers(h), rng.integers(w)
    y0 = int(np.clip(cy - config.patch // 2, 0, max(0, h - config.patch)))
    x0 = int(np.clip(cx - config.patch // 2, 0, max(0, w - config.patch)))
    rows = slice(y0, y0 + config.patch)
    if config.field_edges and len(fg) and rng.random() < config.field_edges:
        rows = field_edge_rows(fg[:, 1], config.patch, config.field_edge_ends, rng)
    return int(start), k, middles, (rows, slice(x0, x0 + config.patch))


def field_edge_rows(rows: np.ndarray, patch: int, ends: str, rng: np.random.Generator) -> slice:
    """The rows of a crop that cuts the spine as a field of view ending within it: a random row between the lowest
    and highest of the foreground ``rows`` is the crop's first (``ends`` "caudal": canonical rows grow towards
    superior, so everything caudal of it is out of view) or last ("cranial"); "both" picks one at even odds. The
    crop's own edge is the cut, as a scan's edge is to the network; a crop shorter than ``patch`` (past the scan's
    cranial end, or a cranial cut near its caudal end) is padded at its cranial end as any short crop is
    (:func:`sample_batch`)."""
    cut = int(rng.integers(rows.min(), rows.max() + 1))
    if ends == "both":
        ends = "caudal" if rng.random() < 0.5 else "cranial"
    return slice(cut, cut + patch) if ends == "caudal" else slice(max(0, cut + 1 - patch), cut + 1)


def sample_batch(cases: list[PreparedCase], config: TrainConfig, rng: np.random.Generator):
    """Random stacks of consecutive slices with in-plane crops: (B, 1, S, P, P) images, (B, K, S, P, P) float
    targets for classes 1..K (one-hot labels, or the cases' fractions with ``soft_labels``) and (B, K, S, P, P)
    bool, whether each voxel's label says whether it is class k: everywhere for the classes a stack's data set
    annotates, and outside the case's ``unannotated`` region for the others. A stack shorter or smaller than the
    batch's is padded at its end: image with the case's minimum, targets 0, known.

    A thick-slice stack (:func:`thick_slice_factor`, k stored slices per slice) averages each run of k slices,
    as a thick slice integrates the tissue across it, and takes its target from the run's middle slice.

    With ``config.target_zoom`` z > 1 the targets and ``known`` are (B, K, S, zP, zP), from the cases' fine labels."""
    classes, shape = config.label_map.out_channels, (config.slices_per_stack, config.patch, config.patch)
    zoom = config.target_zoom
    images = np.empty((config.stacks_per_step, 1, *shape), np.float32)
    targets = np.zeros((config.stacks_per_step, classes, shape[0], zoom * shape[1], zoom * shape[2]), np.float32)
    known = np.ones((config.stacks_per_step, classes, *shape), bool)
    for i in range(config.stacks_per_step):  # filled in place: a GPU step waits on this loop (gpu/README.md)
        case = draw_case(cases, rng)
        start, k, middles, in_plane = sample_window(case, config, rng)
        image = case.image[(slice(start, start + len(middles) * k), *in_plane)]
        image = image.reshape(len(middles), k, *image.shape[1:]).mean(1) if k > 1 else image
        filled = (slice(None), *(slice(0, n) for n in image.shape))
        if image.shape != shape:  # padded at its end; a whole-volume minimum is not worth taking otherwise
            images[i] = float(case.image.min())
        images[i][filled] = image
        if case.fine_label is not None:
            fine = case.fine_label[(middles, *(slice(zoom * part.start, zoom * part.stop) for part in in_plane))]
            targets[i][(slice(None), *(slice(0, n) for n in fine.shape))] = foreground_onehot(fine, classes)
        elif case.fractions is not None:
            targets[i][filled] = case.fractions[(slice(None), middles, *in_plane)]
        else:
            targets[i][filled] = foreground_onehot(case.label[(middles, *in_plane)], classes)
        known[i][filled] = known_voxels(case, classes, (middles, *in_plane), image.shape)
    if zoom > 1:  # a fine pixel is known where the network pixel it lies in is
        known = known.repeat(zoom, axis=-2).repeat(zoom, axis=-1)
    return torch.from_numpy(images), torch.from_numpy(targets), torch.from_numpy(known)


class BatchStream(torch.utils.data.IterableDataset):
    """Endless :func:`sample_batch` batches for a DataLoader's worker processes, each worker drawing from its own
    generator seeded by ``seed_words`` and its worker number."""

    def __init__(self, cases: list[PreparedCase], config: TrainConfig, seed_words: list[int]):
        self.cases, self.config, self.seed_words = cases, config, seed_words

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([*self.seed_words, worker.id if worker else 0])
        while True:
            yield sample_batch(self.cases, self.config, rng)


def training_batches(cases: list[PreparedCase], config: TrainConfig, rng: np.random.Generator,
                     seed_words: list[int], pin_memory: bool = False):
    """The endless batches of one epoch. Without ``config.loader_workers``, drawn here from ``rng`` as each step
    needs one (the stream shares ``rng`` with the augmentation, as it always has); with them, drawn ahead by that
    many processes (reproducible for a given number of workers: the loader takes their batches in turn)."""
    if not config.loader_workers:
        return (sample_batch(cases, config, rng) for _ in itertools.count())
    # forked workers share the prepared cases instead of unpickling a copy each, whatever the parent's start method
    fork = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    loader = torch.utils.data.DataLoader(BatchStream(cases, config, seed_words), batch_size=None,
                                         num_workers=config.loader_workers, pin_memory=pin_memory, prefetch_factor=4,
                                         multiprocessing_context=fork)
    return iter(loader)


def augment(images: torch.Tensor, targets: torch.Tensor, rng: np.random.Generator, soft: bool = False,
            known: torch.Tensor | None = None, spatial_share: float = 1.0):
    """Anatomy-preserving augmentation of (B, 1, S, P, P) stacks and their (B, K, S, P', P') targets: in-plane
    rotation (+-10 deg) and scale (0.9-1.1), the same for every slice of a stack (for a ``spatial_share`` of the
    stacks; the others keep their pixels); left-right mirror (slice order); intensity scale/shift. Targets are
    resampled bilinearly if ``soft``, else nearest (stay 0 or 1).
    A (B, K, S, P', P') ``known`` map (:func:`sample_batch`) moves with the targets (nearest; known where the
    stack is resampled from outside itself) and comes back as a third value. Targets finer than the stacks
    (P' = zP, ``target_zoom``) move as the stacks do: the transform is the same in the in-plane extent's own units."""
    b, _, s, p, _ = images.shape
    theta = np.zeros((b, 2, 3), dtype=np.float32)
    for i in range(b):
        angle, scale = math.radians(rng.uniform(-10, 10)), rng.uniform(0.9, 1.1)
        theta[i, :, :2] = [[math.cos(angle) / scale, -math.sin(angle) / scale],
                           [math.sin(angle) / scale, math.cos(angle) / scale]]
    if spatial_share < 1:  # drawn only then: the full share's batches stay those of earlier runs
        theta[rng.random(b) >= spatial_share, :, :2] = np.eye(2, dtype=np.float32)
    theta_t = torch.from_numpy(theta).repeat_interleave(s, dim=0).to(images.device)

    def warped(t: torch.Tensor, mode: str, padding: str = "zeros") -> torch.Tensor:
        size = t.shape[-1]
        grid = F.affine_grid(theta_t, (b * s, 1, size, size), align_corners=False)
        flat = t.transpose(1, 2).reshape(b * s, t.shape[1], size, size).float()
        moved = F.grid_sample(flat, grid, mode=mode, padding_mode=padding, align_corners=False)
        return moved.reshape(b, s, t.shape[1], size, size).transpose(1, 2)

    images = warped(images, "bilinear", "border")
    targets = warped(targets, "bilinear" if soft else "nearest")
    if known is not None:
        known = ~(warped(~known, "nearest") > 0.5)
    mirror = torch.from_numpy(rng.random(b) < 0.5).to(images.device)
    images[mirror] = images[mirror].flip(2)
    targets[mirror] = targets[mirror].flip(2)
    if known is not None:
        known[mirror] = known[mirror].flip(2)
    gain = torch.from_numpy(rng.uniform(0.85, 1.15, (b, 1, 1, 1, 1)).astype(np.float32)).to(images.device)
    shift = torch.from_numpy(rng.uniform(-0.15, 0.15, (b, 1, 1, 1, 1)).astype(np.float32)).to(images.device)
    augmented = images * gain + shift, targets
    return augmented if known is None else (*augmented, known)


@functools.cache
def appearance_transforms():
    """MONAI's intensity transforms with nnU-Net-like probabilities, for a (S, P, P) stack taken as S channels of
    one 2D image: every slice of a stack gets the same bias field, gamma, blur and resolution. Built once per
    process; :func:`vary_appearance` reseeds them before every use."""
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandBiasField,
        RandGaussianNoise,
        RandGaussianSmooth,
        RandSimulateLowResolution,
    )

    return Compose([
        RandGaussianNoise(prob=0.1, std=0.1),
        RandGaussianSmooth(sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), prob=0.2),
        RandBiasField(degree=3, coeff_range=(0.0, 0.3), prob=0.3),
        RandAdjustContrast(prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
        RandAdjustContrast(prob=0.1, gamma=(0.7, 1.5), invert_image=True, retain_stats=True),
        RandSimulateLowResolution(prob=0.25, zoom_range=(0.5, 1.0), upsample_mode="bilinear"),
    ])


def vary_appearance(images: torch.Tensor, rng: np.random.Generator, transforms=None) -> torch.Tensor:
    """(B, 1, S, P, P) normalised stacks -> the same with a scanner-like change of appearance each
    (:func:`appearance_transforms`, seeded from ``rng``). The bias field multiplies intensities shifted to be
    positive, as it does the scanner's."""
    transforms = transforms or appearance_transforms()
    transforms.set_random_state(seed=int(rng.integers(2**31)))
    varied = torch.empty_like(images)
    for i, stack in enumerate(images[:, 0].float()):
        floor = stack.min()
        varied[i, 0] = torch.as_tensor(transforms(stack - floor), dtype=images.dtype) + floor
    return varied


def remap_contrast(images: torch.Tensor, rng: np.random.Generator, share: float, knots: int = CURVE_KNOTS) -> torch.Tensor:
    """(B, 1, S, P, P) normalised stacks -> the same with ``share`` of them (drawn per stack) passed through a
    :func:`~saunet.preprocessing.random_curve`: the body must then be told by its shape and edges, not its brightness."""
    varied = images.clone()
    for i in np.flatnonzero(rng.random(len(images)) < share):
        stack = images[i].float().cpu().numpy()
        varied[i] = torch.as_tensor(random_curve(stack, rng, knots)).to(device=images.device, dtype=images.dtype)
    return varied


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, kind: str, known: torch.Tensor | None = None) -> torch.Tensor:
    """BCE (binary, one channel) or cross-entropy (K+1 channels) against (B, K, ...) targets for classes 1..K
    (0/1 or fractions; background is what they leave), plus soft Dice for 'dice-bce' and 'batch-dice-bce'
    (:func:`soft_dice`).

    ``known`` (B, K) bool marks the classes each sample's data set annotates, or (B, K, ...) each voxel's
    (:func:`sample_batch`). Where some are not, a voxel left unlabelled may be any of them: its cross-entropy is
    that of the merged class "background or an unannotated class" (the marginal loss of partially labelled
    segmentation), and the Dice term averages over the classes a sample's labels give everywhere. All known (or
    None) is the plain loss.
    """
    partial = known is not None and logits.shape[1] > 1 and not bool(known.all())
    if logits.shape[1] == 1:
        loss = F.binary_cross_entropy_with_logits(logits, target)
        probs = torch.sigmoid(logits)
    elif partial:
        loss = marginal_cross_entropy(logits, target, known)
        probs = torch.softmax(logits, 1)[:, 1:]
    else:
        background = (1 - target.sum(1, keepdim=True)).clamp(min=0)
        loss = F.cross_entropy(logits, torch.cat([background, target], 1))
        probs = torch.softmax(logits, 1)[:, 1:]
    if kind in ("dice-bce", "batch-dice-bce"):
        scored = (known.flatten(2).all(2) if known.ndim > 2 else known) if partial else None  # (B, K)
        loss = loss + 1 - soft_dice(probs, target, scored, over_batch=kind == "batch-dice-bce")
    return loss


def soft_dice(probs: torch.Tensor, target: torch.Tensor, known: torch.Tensor | None, over_batch: bool) -> torch.Tensor:
    """Mean soft Dice of (B, K, ...) probabilities against targets over the classes, counting only the samples
    whose data set annotates a class (``known`` (B, K) bool; None: all).

    Per sample (smoothing 1), a class absent from a stack still scores 1 / (1 + its probability mass there),
    which pushes it towards nothing in every stack that misses it: the rarest levels (the ends of the
    column, the lateral slices) are suppressed. ``over_batch`` sums each class over the batch first, with
    nnU-Net's smoothing of 1e-5, so a class scores where the batch holds it and its absence weighs nothing.
    """
    dims = tuple(range(2, probs.ndim))
    overlap, predicted, reference = (probs * target).sum(dims), probs.sum(dims), target.sum(dims)
    known = torch.ones_like(overlap, dtype=torch.bool) if known is None else known
    if not over_batch:
        return ((2 * overlap + 1) / (predicted + reference + 1))[known].mean()
    weight = known.to(probs.dtype)
    overlap, predicted, reference = ((weight * part).sum(0) for part in (overlap, predicted, reference))
    return ((2 * overlap + 1e-5) / (predicted + reference + 1e-5))[known.any(0)].mean()


def marginal_cross_entropy(logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in which each sample's unlabelled share counts for background and its unannotated classes
    together: -sum_k t_k log p_k - t_0 log(p_0 + sum of p_u over unannotated u). (B, K+1, ...) logits,
    (B, K, ...) targets, (B, K) or (B, K, ...) bool."""
    log_probs = torch.log_softmax(logits, 1)
    merged_classes = torch.cat([torch.ones_like(known[:, :1]), ~known], 1)  # background and unannotated
    shape = (*merged_classes.shape, *([1] * (logits.ndim - merged_classes.ndim)))
    merged = torch.logsumexp(log_probs.masked_fill(~merged_classes.view(shape), float("-inf")), 1)
    background = (1 - target.sum(1)).clamp(min=0)
    return -((target * log_probs[:, 1:]).sum(1) + background * merged).mean()


def predict_network_grid(model: torch.nn.Module, image: np.ndarray, label_map: LabelMap, bf16: bool = False) -> np.ndarray:
    """Foreground probabilities (K, D, H, W) for a prepared (D, H, W) image."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(torch.from_numpy(image)[None, None].to(device)).float()[0].cpu().numpy()
    return label_map.probabilities(logits)


def mean_class_dice(predicted: np.ndarray, reference: np.ndarray, classes: int, known: np.ndarray | None = None) -> float:
    """Mean Dice over classes 1..K of two class maps (for K = 1: the binary Dice ``saunet evaluate`` gives);
    with ``known`` (K,) bool, over the classes the reference annotates only."""
    scored = [k for k in range(1, classes + 1) if known is None or known[k - 1]]
    return float(np.mean([overlap_metrics(predicted == k, reference == k)["dice"] for k in scored]))


def training_form(model: torch.nn.Module, channels_last: bool = True) -> torch.nn.Module:
    """The model in the memory format it trains fastest in: channels-last for the 2D models (oneDNN's
    convolutions, forward and backward, run on it without reordering; reports/speed-ups.md), as it is for
    the 3D U-Net. The same function: only the weights' strides change."""
    if channels_last and not model.volumetric:
        model = model.to(memory_format=torch.channels_last)
    return model


def fine_logits(logits: torch.Tensor, zoom: int) -> torch.Tensor:
    """(B, C, S, P, P) logits -> (B, C, S, zoom P, zoom P), resampled in-plane as inference resamples them onto a
    scan's grid (bilinear, pixel centres aligned: saunet.preprocessing.linear_weights), so the loss scores the
    boundaries inference will draw, between the network's pixels, not the nearest network pixel's label."""
    return F.interpolate(logits, scale_factor=(1, zoom, zoom), mode="trilinear", align_corners=False)


def training_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...],
                  config: TrainConfig, rng: np.random.Generator, device: torch.device) -> float:
    """One optimiser step on a freshly sampled batch (:func:`sample_batch`), augmented here; returns the loss."""
    images, targets, known = (t.to(device, non_blocking=True) for t in batch)
    if config.augment:  # on the device: a GPU resamples the batch faster than the CPU cores feeding it
        images, targets, known = augment(images, targets, rng, config.soft_labels, known, config.spatial_share)
    if config.appearance:
        images = vary_appearance(images.cpu(), rng).to(device)
    if config.contrast_curves:
        images = remap_contrast(images, rng, config.contrast_curves)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
        logits = net(images)
    if config.target_zoom > 1:
        logits = fine_logits(logits, config.target_zoom)
    loss = segmentation_loss(logits.float(), targets, config.loss, known)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


@dataclass
class TrainingRun:
    """What the steps of one training share: data, model, optimiser, and the checkpoint record being written."""

    config: TrainConfig
    out_dir: Path
    train_data: list[PreparedCase]
    val_data: list[PreparedCase]
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    checkpoint: Checkpoint
    device: torch.device
    average: torch.optim.swa_utils.AveragedModel | None = None  # TrainConfig.ema: what is validated and saved
    rank: int = 0
    world: int = 1
    progress: bool = True


def new_record(config: TrainConfig, model_kwargs: dict, train_data: list[PreparedCase], device: torch.device,
               profile: TrainingProfile) -> Checkpoint:
    """The checkpoint record of a run before its first epoch: what inference will need, and where it trained."""
    return Checkpoint(
        model=config.model, model_kwargs=model_kwargs, preprocessing=config.preprocessing, label_map=config.label_map,
        # the same as typical_component_count(train_cases), from the labels prepare_cases has read already
        postprocessing=PostprocessingSettings(max_components=int(np.median([case.components for case in train_data]))),
        slice_axis=config.slice_axis,
        # a CPU run repeats exactly only at the same thread count: the count sets the order floats are summed in
        trained_on=torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu (threads: {torch.get_num_threads()})",
        config={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        training_profile=profile.to_dict())


def weight_average(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (BatchNorm's running statistics, which
    otherwise follow the last few batches), to update after every step; None when ``decay`` is 0."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def resume_from(saved: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                average: torch.optim.swa_utils.AveragedModel | None) -> None:
    """Continue a run from its last checkpoint: the weights as trained, the optimiser, the average."""
    model.load_state_dict(saved.training_state_dict or saved.state_dict)
    optimizer.load_state_dict(saved.optimizer)
    if average is not None:
        average.module.load_state_dict(saved.state_dict)
        average.n_averaged.fill_(max(saved.epoch, 1))


def inference_model(run: TrainingRun) -> torch.nn.Module:
    """The weights validation and the checkpoints' ``state_dict`` hold: the average, if the recipe keeps one."""
    return run.model if run.average is None else run.average.module


def set_up(config: TrainConfig, train_cases: list[Case], val_cases: list[Case], out_dir: Path,
           resume: bool, progress: bool) -> TrainingRun:
    """Prepare the data, build the model and optimiser, and resume from ``checkpoint_last.pt`` if asked."""
    rank, world = _distributed()
    torch.manual_seed(config.seed)
    train_data = prepare_cases(train_cases, config, progress and rank == 0)
    val_data = prepare_cases(val_cases, config, progress and rank == 0)
    model_kwargs = full_arguments(config.model, out_channels=config.label_map.network_channels, **config.model_kwargs)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    model = training_form(create(config.model, **model_kwargs).to(device), config.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    profile = training_profile(train_cases, config.slice_axis, config.contrast_curves)
    checkpoint = new_record(config, model_kwargs, train_data, device, profile)
    average = weight_average(model, config.ema)
    last_path = out_dir / "checkpoint_last.pt"
    if resume and last_path.exists():
        saved = Checkpoint.load(last_path)
        resume_from(saved, model, optimizer, average)
        checkpoint.epoch, checkpoint.best_dice, checkpoint.history = saved.epoch, saved.best_dice, saved.history
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if world > 1 else model
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    return TrainingRun(config, out_dir, train_data, val_data, model, net, optimizer, checkpoint, device, average, rank,
                       world, progress)


def train_epoch(run: TrainingRun, epoch: int) -> list[float]:
    """One epoch of optimiser steps; returns the losses. Every epoch draws from its own seeded generator, so
    a resumed run samples what the original would have."""
    config = run.config
    rng = np.random.default_rng([config.seed, epoch, run.rank])
    torch.manual_seed(config.seed * 1000 + epoch)
    for group in run.optimizer.param_groups:  # nnU-Net's polynomial decay, a function of the epoch alone
        group["lr"] = config.lr * (1 - epoch / config.epochs) ** 0.9
    run.net.train()
    losses = []
    bar = tqdm(range(config.steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}",
               disable=None if run.progress and run.rank == 0 else True, leave=False)
    batches = training_batches(run.train_data, config, rng, [config.seed, epoch, run.rank], run.device.type == "cuda")
    for _, batch in zip(bar, batches):
        losses.append(training_step(run.net, run.optimizer, batch, config, rng, run.device))
        if run.average is not None:
            run.average.update_parameters(run.model)
        bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
    return losses


def validate(run: TrainingRun) -> float:
    """Mean Dice of the validation cases on the network grid (NaN without validation cases)."""
    label_map, model = run.config.label_map, inference_model(run)
    scores = [mean_class_dice(label_map.decode(predict_network_grid(model, case.image, label_map, run.config.bf16)),
                              case.label, label_map.out_channels, case.known) for case in run.val_data]
    return float(np.mean(scores)) if scores else float("nan")


def save_epoch(run: TrainingRun, epoch: int, losses: list[float], seconds: float, val_dice: float) -> None:
    """Record the epoch; write checkpoint_last.pt, checkpoint_best.pt (when validation improved, or always
    without validation cases) and metrics.csv."""
    record = run.checkpoint
    record.history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_dice": val_dice,
                           "seconds": seconds})
    record.epoch, record.state_dict, record.optimizer = epoch + 1, inference_model(run).state_dict(), run.optimizer.state_dict()
    record.training_state_dict = None if run.average is None else run.model.state_dict()
    if not run.val_data or val_dice > record.best_dice:
        record.best_dice = val_dice if run.val_data else record.best_dice
        record.save(run.out_dir / "checkpoint_best.pt")
    record.save(run.out_dir / "checkpoint_last.pt")
    write_csv(record.history, run.out_dir / "metrics.csv", ["epoch", "train_loss", "val_dice", "seconds"])
    if run.progress:
        tqdm.write(f"{run.out_dir.name} epoch {epoch + 1}/{run.config.epochs}: loss {np.mean(losses):.4f}"
                   f"  val Dice {val_dice:.4f}  {seconds:.0f} s")


def finish_distributed(run: TrainingRun) -> None:
    """Leave the process group. With ``SAUNET_WEIGHT_FINGERPRINT`` set (tests), each rank first writes a
    fingerprint of its weights to ``rank<r>_weights.txt``, to show that the ranks stayed in step."""
    if run.world <= 1:
        return
    if os.environ.get("SAUNET_WEIGHT_FINGERPRINT"):
        weights = torch.cat([p.detach().flatten() for p in run.model.parameters()]).double()
        (run.out_dir / f"rank{run.rank}_weights.txt").write_text(
            f"{weights.sum().item():.10e} {weights.abs().sum().item():.10e} {weights.square().sum().item():.10e}\n")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def train(
    config: TrainConfig,
    train_cases: list[Case],
    val_cases: list[Case],
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train ``config.model``; writes checkpoint_last.pt, checkpoint_best.pt and metrics.csv in ``out_dir``.

    Args:
        config: model, recipe and preprocessing.
        train_cases: the cases to train on.
        val_cases: cases to choose the best checkpoint by (may be empty: the last epoch is then the best).
        out_dir: run folder.
        resume: continue from ``out_dir/checkpoint_last.pt`` when it exists.
        progress: progress bars and a line per epoch.

    Returns:
        ``{"epochs", "best_val_dice", "history"}`` of the last checkpoint.
    """
    run = set_up(config, train_cases, val_cases, Path(out_dir), resume, progress)
    for epoch in range(run.checkpoint.epoch, config.epochs):
        started = time.time()
        losses = train_epoch(run, epoch)
        seconds = time.time() - started
        if run.rank == 0:
            save_epoch(run, epoch, losses, seconds, validate(run))
        if run.world > 1:
            torch.distributed.barrier()
    finish_distributed(run)
    return {"epochs": config.epochs, "best_val_dice": run.checkpoint.best_dice, "history": run.checkpoint.history}
