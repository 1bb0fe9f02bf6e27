"""Small builders shared by the tests."""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from saunet.experiments.phantoms import make_phantom, phantom_volume


def write_image(array: np.ndarray, path: Path, spacing=(1.0, 1.0, 1.0), origin=None, direction=None) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: image.GetDimension()])
    if origin is not None:
        image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def phantom_pair(folder: Path, image_name: str, label_name: str, seed: int = 0, shape=(7, 40, 40)):
    phantom = make_phantom(seed=seed, shape=shape)
    volume = phantom_volume(phantom, folder / image_name)
    from saunet.imageio import write_like

    write_like(phantom.image, volume, folder / image_name)
    write_like(phantom.label, volume, folder / label_name)
    return folder / image_name, folder / label_name
