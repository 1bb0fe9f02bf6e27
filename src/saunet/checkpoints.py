"""One record describes a checkpoint: :class:`Checkpoint`, saved and loaded here alone.

A checkpoint holds everything inference needs (model name and arguments, preprocessing, label map,
post-processing) and only tensors and plain Python values, so it loads with ``torch.load(...,
weights_only=True)``. An ONNX export carries the same record without tensors in its metadata
(:meth:`Checkpoint.metadata`). PyTorch is imported only to save, load or build a model, so the ONNX path
of ``saunet segment`` never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from saunet.errors import InputError
from saunet.files import atomic_path
from saunet.labels import LabelMap
from saunet.postprocessing import PostprocessingSettings
from saunet.preprocessing import PreprocessingSettings

CHECKPOINT_FORMAT = 1
# What inference needs; the rest (weights, optimiser, history) belongs to training.
METADATA_KEYS = ("model", "model_kwargs", "preprocessing", "label_map", "postprocessing", "slice_axis",
                 "training_profile")


@dataclass
class Checkpoint:
    """A trained (or training) model and how to use it."""

    model: str
    model_kwargs: dict
    preprocessing: PreprocessingSettings = field(default_factory=PreprocessingSettings)
    label_map: LabelMap = field(default_factory=LabelMap)
    postprocessing: PostprocessingSettings = field(default_factory=PostprocessingSettings)
    slice_axis: int | None = None  # None: the layout comes from each scan's header
    trained_on: str = "cpu"  # "cpu (threads: N)" (plain "cpu" before session 31) or the GPU's name
    config: dict = field(default_factory=dict)  # the TrainConfig it was trained with
    state_dict: dict | None = None  # the weights inference uses
    # the weights as trained, when state_dict holds their moving average (TrainConfig.ema): what a resumed run continues
    training_state_dict: dict | None = None
    optimizer: dict | None = None
    epoch: int = 0
    best_dice: float = -1.0
    history: list[dict] = field(default_factory=list)
    # saunet.quality.TrainingProfile.to_dict() of the training scans: what quality control calls familiar
    training_profile: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The stored form: plain values and tensors (format 1, as every checkpoint saunet has written)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        preprocessing = self.preprocessing.to_dict()
        values.update(format=CHECKPOINT_FORMAT, label_map=self.label_map.to_dict(),
                      preprocessing={**preprocessing, "clip_percentiles": list(preprocessing["clip_percentiles"])},
                      postprocessing={"max_components": self.postprocessing.max_components})
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Checkpoint:
        names = {f.name for f in fields(cls)}
        record = {k: v for k, v in values.items() if k in names}
        record.update(preprocessing=PreprocessingSettings.from_dict(values["preprocessing"]),
                      label_map=LabelMap.from_dict(values["label_map"]),
                      postprocessing=PostprocessingSettings(**values.get("postprocessing", {})))
        return cls(**record)

    def metadata(self) -> dict:
        """What inference needs, as plain values (an ONNX export's metadata)."""
        stored = self.to_dict()
        return {k: stored[k] for k in METADATA_KEYS}

    def save(self, path: str | Path, with_optimizer: bool = True) -> Path:
        """Write atomically (a killed run leaves the previous file readable); ``with_optimizer`` False gives
        the slim checkpoint that ships."""
        import torch

        stored = self.to_dict()
        if not with_optimizer:
            stored.pop("optimizer")
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(stored, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Read a saunet checkpoint; :class:`InputError` for a missing or foreign file."""
        import torch

        path = Path(path)
        if not path.exists():
            raise InputError(path, "no such checkpoint")
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
            raise InputError(path, f"not a readable saunet checkpoint ({type(err).__name__})") from None
        if not isinstance(stored, dict) or stored.get("format") != CHECKPOINT_FORMAT:
            raise InputError(path, "not a saunet checkpoint")
        return cls.from_dict(stored)

    def build_model(self):
        """The network with its weights, in eval mode (untrained when the record holds no weights)."""
        from saunet.models import create

        model = create(self.model, **self.model_kwargs)
        if self.state_dict is not None:
            model.load_state_dict(self.state_dict)
        return model.eval()
