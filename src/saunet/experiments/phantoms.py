"""Seeded synthetic spine-like sagittal MR volumes with vertebral-body masks, for tests and the demo.

A phantom is slice-first (D sagittal slices, H posterior, W cranial), like ../shared/data/lumbar-t2:
a lordotic column of vertebral bodies (labels 1..N, cranial to caudal) with discs between them, the spinal
canal behind, soft tissue around, a smooth bias field and noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from saunet.imageio import Volume, write_like


@dataclass
class Phantom:
    image: np.ndarray  # float32 (D, H, W)
    label: np.ndarray  # uint8 (D, H, W), 0 background, 1..N vertebral bodies
    spacing: tuple[float, float, float]  # mm per axis


def make_phantom(
    seed: int = 0,
    shape: tuple[int, int, int] = (13, 160, 160),
    spacing: tuple[float, float, float] | None = None,
    vertebrae: int = 5,
) -> Phantom:
    """One phantom. The field of view is about 40 x 200 x 200 mm unless ``spacing`` says otherwise."""
    rng = np.random.default_rng(seed)
    d, h, w = shape
    if spacing is None:
        spacing = (max(1.0, 44.0 / d), 200.0 / h, 200.0 / w)
    x = (np.arange(d) - (d - 1) / 2) * spacing[0]  # left-right, mm from the midline
    y = (np.arange(h) - (h - 1) / 2) * spacing[1]  # posterior
    z = (np.arange(w) - (w - 1) / 2) * spacing[2]  # cranial
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")

    # Lordotic centre line of the vertebral bodies: y = f(z).
    curve = rng.uniform(8, 18) * np.sin(Z / rng.uniform(90, 130) + rng.uniform(-0.3, 0.3)) + rng.uniform(-10, 10)
    body_depth, body_width = rng.uniform(30, 38), rng.uniform(36, 46)  # mm, anterior-posterior and left-right
    level_height = 200.0 / (vertebrae + 0.6)
    body_height = level_height * rng.uniform(0.68, 0.76)
    Yc = Y - curve

    image = np.full(shape, 0.15, dtype=np.float32)
    soft_tissue = (Yc / 95) ** 2 + (X / 130) ** 2 < 1
    image[soft_tissue] = 0.35
    label = np.zeros(shape, dtype=np.uint8)
    centres = (np.arange(vertebrae) - (vertebrae - 1) / 2)[::-1] * level_height + rng.uniform(-8, 8)
    for level, centre in enumerate(centres, start=1):
        tilt = rng.uniform(-0.12, 0.12)
        zz = (Z - centre - tilt * Yc) / (body_height / 2)
        yy = Yc / (body_depth / 2)
        xx = X / (body_width / 2)
        body = np.abs(zz) ** 4 + np.abs(yy) ** 3 + xx**2 < 1  # rounded box across the slices
        label[body] = level
        image[body] = rng.uniform(0.45, 0.6)
        disc_z = (Z - centre + level_height / 2) / ((level_height - body_height) / 2 * 0.9)
        disc = (np.abs(disc_z) ** 2 + np.abs(yy * 0.95) ** 2.5 + (xx * 0.95) ** 2 < 1) & (label == 0)
        image[disc] = rng.uniform(0.7, 0.9)
    canal = ((Yc - body_depth / 2 - 9) / 7) ** 2 + (X / 9) ** 2 < 1
    image[canal & (label == 0)] = 1.0

    bias = 1 + 0.25 * np.sin(Y / rng.uniform(80, 160) + rng.uniform(0, 6)) * np.cos(Z / rng.uniform(80, 160))
    image = image * bias + rng.normal(0, 0.04, shape)
    return Phantom(np.abs(image).astype(np.float32) * 1000, label, tuple(float(s) for s in spacing))


def phantom_volume(phantom: Phantom, path: Path) -> Volume:
    """A :class:`Volume` for the phantom: slice axis first in the array, RAS-like LPS direction as lumbar-t2."""
    image = sitk.GetImageFromArray(phantom.image)
    # numpy axes (D, H, W) are ITK axes (2, 1, 0): axis D runs left-right, H posterior, W cranial.
    image.SetSpacing(tuple(reversed(phantom.spacing)))
    direction = np.zeros((3, 3))
    direction[2, 0] = 1.0  # ITK axis 0 (W) -> superior (LPS z)
    direction[1, 1] = 1.0  # ITK axis 1 (H) -> posterior (LPS y)
    direction[0, 2] = -1.0  # ITK axis 2 (D) -> right-to-left flipped: LPS x
    image.SetDirection(tuple(direction.ravel()))
    image.SetOrigin((10.0, -20.0, 5.0))
    return Volume(phantom.image, image, path)


def write_cohort(folder: Path, count: int, seed: int = 0, **kwargs) -> list[str]:
    """Write ``count`` phantoms in nnU-Net raw layout under ``folder``; returns the case names."""
    names = []
    for i in range(count):
        phantom = make_phantom(seed=seed + i, **kwargs)
        name = f"phantom_{i:03d}"
        volume = phantom_volume(phantom, folder / "imagesTr" / f"{name}_0000.nii.gz")
        write_like(phantom.image, volume, volume.path)
        write_like(phantom.label, volume, folder / "labelsTr" / f"{name}.nii.gz")
        names.append(name)
    vertebrae = int(kwargs.get("vertebrae", 5))
    labels = {"background": 0, **{f"vertebra_{k}": k for k in range(1, vertebrae + 1)}}
    meta = {"name": "phantoms", "channel_names": {"0": "T2"}, "labels": labels, "numTraining": count,
            "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return names
