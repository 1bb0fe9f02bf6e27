"""What labels mean, in one place: data-set values <-> classes, and network output -> class labels.

Training (validation Dice), inference and cross-validation all decode through :class:`LabelMap`, as
nnU-Net's ``LabelManager`` serves its training and prediction alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The level table of every data set here (each dataset.json's "labels"): 1 T11 ... 7 L5.
LEVELS = {1: "T11", 2: "T12", 3: "L1", 4: "L2", 5: "L3", 6: "L4", 7: "L5"}
BODY = "vertebral body"


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # overflow-free form of 1 / (1 + exp(-x))


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    exp = logits - logits.max(axis, keepdims=True)
    np.exp(exp, out=exp)  # in place: a level model's maps are large
    exp /= exp.sum(axis, keepdims=True)
    return exp


@dataclass(frozen=True)
class LabelMap:
    """Which label values are foreground. ``classes`` None: binary (any label > 0, the paper's task);
    else the listed values become classes 1..K in that order and all others background."""

    classes: tuple[int, ...] | None = None

    @property
    def out_channels(self) -> int:
        """K, the foreground classes."""
        return 1 if self.classes is None else len(self.classes)

    @property
    def network_channels(self) -> int:
        """Channels of the network's output: one sigmoid channel for the binary task, else softmax over
        background and K classes."""
        return 1 if self.classes is None else self.out_channels + 1

    def apply(self, label: np.ndarray) -> np.ndarray:
        """Data-set label values -> classes 0..K (uint8)."""
        if self.classes is None:
            return (label > 0).astype(np.uint8)
        mapped = np.zeros(label.shape, dtype=np.uint8)
        for index, value in enumerate(self.classes, start=1):
            mapped[label == value] = index
        return mapped

    def values(self, classes: np.ndarray) -> np.ndarray:
        """Classes 0..K -> the data set's own label values (uint8); the inverse of :meth:`apply`."""
        if self.classes is None:
            return classes.astype(np.uint8)
        return np.array([0, *self.classes], dtype=np.uint8)[classes]

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Network logits (channels, ...) -> foreground probabilities (K, ...), float32."""
        if logits.shape[0] == 1:
            return sigmoid(logits).astype(np.float32, copy=False)
        return softmax(logits, 0)[1:].astype(np.float32, copy=False)

    @staticmethod
    def decoded_as_foreground(logits: np.ndarray) -> np.ndarray:
        """Network logits (channels, ...) -> bool (...): where :meth:`decode` of their probabilities gives a class,
        found without the softmax (a class's logit above background's; the binary task's logit above 0)."""
        if logits.shape[0] == 1:
            return logits[0] > 0
        return logits[1:].max(0) > logits[0]

    @staticmethod
    def network_classes(logits: np.ndarray) -> np.ndarray:
        """Network logits (channels, ...) -> classes 0..K (uint8) where they lie, on the network's grid: what
        :meth:`decode` gives there."""
        if logits.shape[0] == 1:
            return (logits[0] > 0).astype(np.uint8)
        return logits.argmax(0).astype(np.uint8)

    @staticmethod
    def decode(probabilities: np.ndarray) -> np.ndarray:
        """Foreground probabilities (K, ...) -> classes 0..K (uint8): the most probable of background and the
        K classes, background being what the classes leave (1 - p for the binary task: p > 0.5)."""
        if probabilities.shape[0] == 1:  # the same rule, without 1 - p's rounding
            return (probabilities[0] > 0.5).astype(np.uint8)
        background = 1.0 - probabilities.sum(0, keepdims=True)
        return np.concatenate([background, probabilities]).argmax(0).astype(np.uint8)

    def known(self, annotated: tuple[int, ...] | None) -> np.ndarray:
        """(K,) bool: which classes 1..K a data set annotating the label values ``annotated`` labels (None: all).
        A voxel left 0 there may belong to a class it does not annotate: unknown, not background."""
        if self.classes is None or annotated is None:
            return np.ones(self.out_channels, dtype=bool)
        return np.array([value in annotated for value in self.classes])

    def names(self, levels: bool = True) -> dict[int, str]:
        """Label value -> name in the maps this model writes: its levels (``levels``), else one label 1 for
        every vertebral body."""
        if self.classes is None or not levels:
            return {1: BODY}
        return {value: LEVELS.get(value, f"label {value}") for value in self.classes}

    def to_dict(self) -> dict:
        return {"classes": None if self.classes is None else list(self.classes)}

    @classmethod
    def from_dict(cls, values: dict) -> "LabelMap":
        classes = values.get("classes")
        return cls(None if classes is None else tuple(int(c) for c in classes))
