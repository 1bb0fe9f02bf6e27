"""The training recipe, :class:`TrainConfig`: plain values, importable without PyTorch (the command line
takes its defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from saunet.labels import LabelMap
from saunet.preprocessing import PreprocessingSettings

LOSSES = ("bce", "dice-bce", "batch-dice-bce")
FIELD_EDGE_ENDS = ("caudal", "cranial", "both")
# the outline refiner's training patches (saunet.refiner_training): their side in pixels and their number per step
REFINER_PATCH = 64
REFINER_BATCH = 32


class RecipeError(ValueError):
    """A :class:`TrainConfig` value out of its range; ``field`` names it, so the command line can name its option."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def check_refiner_patches(patch: int, batch: int) -> None:
    """The outline refiner's training patches: a side its network can pool four times, at least one a step."""
    if patch <= 0 or patch % 16:
        raise RecipeError("patch", f"{patch} is not a positive multiple of 16 (the refiner pools four times)")
    if batch <= 0:
        raise RecipeError("batch", f"{batch} patches a step: must be positive")


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
    # the paper's; "dice-bce" adds a soft Dice term per stack, "batch-dice-bce" one over the whole batch
    # (saunet.training.soft_dice)
    loss: str = "bce"
    seed: int = 0
    bf16: bool = False  # bfloat16 autocast (CPU) / AMP (GPU)
    augment: bool = True
    # MRI appearance augmentation on top (saunet.training.vary_appearance): bias field, gamma (also inverted),
    # noise, blur, lower resolution; for scanners and contrasts not in the training data.
    appearance: bool = False
    # Share of stacks whose intensities pass through a random non-monotonic curve (saunet.training.remap_contrast):
    # for contrasts that order the tissues' brightness otherwise than the training scans (T1 against T2).
    contrast_curves: float = 0.0
    # Share of stacks rotated and scaled in-plane (saunet.training.augment); the rest keep their pixels, and their
    # labels the network grid's, unresampled: every resampling moves a nearest label's boundary by up to half a pixel.
    spatial_share: float = 1.0
    channels_last: bool = True  # the 2D models train channels-last (saunet.training.training_form)
    # Train on the fraction of each network-grid pixel a class covers (area-resampled masks) instead of a
    # nearest-neighbour label (reports/lumbar-t2/experiments/soft-labels).
    soft_labels: bool = False
    # The loss scored this many times finer in-plane than the network grid: the logits resampled bilinearly, as
    # inference resamples them onto the scan's grid, against labels sent that fine (nearest). A nearest label on the
    # network grid itself moves each boundary by up to half a pixel (saunet.training.fine_logits); 1: off.
    target_zoom: int = 1
    # Share of slice stacks drawn as 3-5 mm thick slices (saunet.training.thick_slice_factor): clinical scans of
    # other centres are sliced thicker than the training scans.
    thick_slices: float = 0.0
    # Share of slice stacks whose in-plane crop begins (or ends: field_edge_ends) at a random row within the bodies'
    # cranio-caudal extent, so its edge cuts the spine as a field of view ending there does
    # (saunet.training.field_edge_rows): a network that sees the sacrum under every crop calls the lowest body L5.
    field_edges: float = 0.0
    # Which end of the crop cuts the spine: "caudal" (no sacrum in view), "cranial" (nothing above the cut) or "both"
    # (either, at even odds). Caudal only was the one-fold pilot's (reports/levels/field-of-view/pilot.md).
    field_edge_ends: str = "caudal"
    # Validate and save an exponential moving average of the weights (BatchNorm statistics too), updated after every
    # step with this decay; 0: the weights as trained. Successive epochs' weights (and BatchNorm's statistics of the
    # last few batches) still differ late in a run; an average follows no single batch (saunet.training.weight_average).
    ema: float = 0.0
    # Partial labels as before session 14: a level a data set leaves unannotated may be any unlabelled voxel of its
    # scans, not only one beside the annotated bodies (saunet.training.unannotated_region); the recipe of the
    # weights shipped until session 16, which longer training turns into calling a water-fat scan's background T11.
    unannotated_anywhere: bool = False
    # Processes drawing the training batches (saunet.training.training_batches); 0 draws them in the training
    # process. On a GPU the sampling, not the model, bounds a step (reports/levels/gpu/README.md).
    loader_workers: int = 0
    in_plane_spacing: float | None = PreprocessingSettings.in_plane_spacing
    slice_axis: int | None = None  # None: found from each image's orientation
    classes: tuple[int, ...] | None = None  # None: binary, any label > 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise RecipeError("loss", f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if not 0 <= self.thick_slices <= 1:
            raise RecipeError("thick_slices", f"{self.thick_slices} is not a share of slice stacks from 0 to 1")
        if not 0 <= self.field_edges <= 1:
            raise RecipeError("field_edges", f"{self.field_edges} is not a share of slice stacks from 0 to 1")
        if self.field_edge_ends not in FIELD_EDGE_ENDS:
            raise RecipeError("field_edge_ends", f"{self.field_edge_ends!r} is not one of {', '.join(FIELD_EDGE_ENDS)}")
        if not 0 <= self.spatial_share <= 1:
            raise RecipeError("spatial_share", f"{self.spatial_share} is not a share of slice stacks from 0 to 1")
        if not 0 <= self.contrast_curves <= 1:
            raise RecipeError("contrast_curves", f"{self.contrast_curves} is not a share of slice stacks from 0 to 1")
        if not 0 <= self.ema < 1:
            raise RecipeError("ema", f"{self.ema} is not a decay from 0 (off) to below 1")
        if self.target_zoom < 1:
            raise RecipeError("target_zoom", f"{self.target_zoom} is not a zoom of the network grid (1 or more)")
        if self.target_zoom > 1 and self.soft_labels:
            raise RecipeError("target_zoom", "fine targets and soft labels are two answers to one question: choose one")
        if self.loader_workers < 0:
            raise RecipeError("loader_workers", f"{self.loader_workers} is not a number of processes (0 or more)")

    @property
    def stacks_per_step(self) -> int:
        from saunet.models import is_volumetric  # PyTorch: not for the command line's defaults

        return self.batch_size or (1 if is_volumetric(self.model) else 4)

    @property
    def slices_per_stack(self) -> int:
        from saunet.models import is_volumetric

        return self.stack or (16 if is_volumetric(self.model) else 3)

    @property
    def preprocessing(self) -> PreprocessingSettings:
        return PreprocessingSettings(in_plane_spacing=self.in_plane_spacing)

    @property
    def label_map(self) -> LabelMap:
        return LabelMap(self.classes)
