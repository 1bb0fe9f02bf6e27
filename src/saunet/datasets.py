"""Data-set adapters: list (image, label) cases from the folder layouts of the public spine data sets."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from saunet.errors import InputError
from saunet.imageio import Volume, case_id, case_name, is_image_file, read_volume, same_geometry

LAYOUTS = ("nnunet", "mrspineseg", "spider", "folders")


@dataclass(frozen=True)
class Case:
    name: str
    image: Path
    label: Path | None
    # Label values the data set annotates (dataset.json "annotated_labels"); None: every foreground value is
    # annotated, so an unlabelled voxel is background. Elsewhere an unlabelled voxel may be an unannotated level.
    annotated: tuple[int, ...] | None = None
    dataset: str = ""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def _pair_by_name(images: list[Path], labels: dict[str, Path], name_of) -> list[Case]:
    cases = []
    for image in images:
        name = name_of(image)
        cases.append(Case(name, image, labels.get(name)))
    return cases


def detect_layout(root: Path) -> str:
    if (root / "imagesTr").is_dir():
        return "nnunet"
    if (root / "MR").is_dir() and (root / "Mask").is_dir():
        return "mrspineseg"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "spider"
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return "folders"
    raise InputError(root, "not a known data-set layout (nnU-Net imagesTr/labelsTr, MRSpineSeg MR/Mask, "
                     "SPIDER images/masks, or images/labels folders)")


def list_cases(root: str | Path, layout: str | None = None) -> list[Case]:
    """The cases of the data set at ``root``; ``layout`` is detected when None."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "no such data-set folder")
    layout = layout or detect_layout(root)
    if layout == "nnunet":
        labels = {case_name(p): p for p in _images(root / "labelsTr")} if (root / "labelsTr").is_dir() else {}
        cases = _pair_by_name(_images(root / "imagesTr"), labels, case_id)
    elif layout == "mrspineseg":
        labels = {re.sub(r"^mask_", "", case_name(p)).lower(): p for p in _images(root / "Mask")}
        cases = _pair_by_name(_images(root / "MR"), labels, lambda p: case_name(p).lower())
    elif layout == "spider":
        labels = {case_name(p): p for p in _images(root / "masks")}
        cases = _pair_by_name(_images(root / "images"), labels, case_name)
    elif layout == "folders":
        labels = {case_name(p): p for p in _images(root / "labels")}
        cases = _pair_by_name(_images(root / "images"), labels, case_name)
    else:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not cases:
        raise InputError(root, f"no images found in the {layout} layout")
    annotated = annotated_labels(root)
    return [replace(c, annotated=annotated, dataset=root.name) for c in cases]


def annotated_labels(root: Path) -> tuple[int, ...] | None:
    """The label values ``root/dataset.json`` says its masks annotate (``annotated_labels``); None if it says
    nothing (every value is annotated)."""
    import json

    meta = root / "dataset.json"
    if not meta.exists():
        return None
    try:
        values = json.loads(meta.read_text(encoding="utf-8")).get("annotated_labels")
    except ValueError as err:
        raise InputError(meta, f"unreadable dataset.json ({err})") from None
    return None if values is None else tuple(sorted(int(v) for v in values))


def read_case(case: Case, allowed_labels: set[int] | None = None) -> tuple[Volume, Volume]:
    """Read a case's image and label and check that they belong together."""
    if case.label is None:
        raise InputError(case.image, "has no label file")
    image, label = read_volume(case.image), read_volume(case.label)
    mismatch = same_geometry(image, label)
    if mismatch:
        raise InputError(case.label, f"geometry does not match its image: {mismatch}")
    values = np.unique(label.array)
    if not np.allclose(values, np.round(values)) or values.min() < 0:
        raise InputError(case.label, "label map holds non-integer or negative values")
    if allowed_labels is not None:
        unknown = sorted(set(int(v) for v in values) - allowed_labels)
        if unknown:
            raise InputError(case.label, f"label values {unknown} are not among the data set's labels {sorted(allowed_labels)}")
    return image, label


def dataset_labels(root: Path) -> set[int] | None:
    """Label values declared by an nnU-Net ``dataset.json``; None when the layout declares none."""
    import json

    meta = root / "dataset.json"
    if not meta.exists():
        return None
    try:
        labels = json.loads(meta.read_text(encoding="utf-8"))["labels"]
    except (ValueError, KeyError) as err:
        raise InputError(meta, f"unreadable dataset.json ({err})") from None
    values: set[int] = set()
    for value in labels.values():
        values.update(value if isinstance(value, list) else [value])
    return {int(v) for v in values}


def check_dataset(root: str | Path, layout: str | None = None) -> list[dict]:
    """One row per case: shape, spacing, label values, foreground voxels, and a problem (or 'ok')."""
    root = Path(root)
    allowed = dataset_labels(root)
    rows = []
    for case in list_cases(root, layout):
        row = {"case": case.name, "shape": "", "spacing": "", "labels": "", "foreground": 0, "problem": "ok"}
        try:
            image, label = read_case(case, allowed)
            row.update(
                shape="x".join(map(str, image.array.shape)),
                spacing="x".join(f"{s:g}" for s in image.spacing),
                labels=",".join(str(int(v)) for v in np.unique(label.array)),
                foreground=int((label.array > 0).sum()),
            )
            if row["foreground"] == 0:
                row["problem"] = f"{case.label}: label map is empty"
        except InputError as err:
            row["problem"] = str(err)
        rows.append(row)
    return rows
