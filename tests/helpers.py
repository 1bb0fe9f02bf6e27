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


def write_dicom_series(image: sitk.Image, folder: Path) -> Path:
    """``image`` as an MR DICOM series (one file per ITK k slice) with the tags a DICOM SEG must reference."""
    import pydicom

    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    orientation = "\\".join(f"{v:.6f}" for v in [*direction[:, 0], *direction[:, 1]])
    study, series, frame = (pydicom.uid.generate_uid() for _ in range(3))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        item = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {"0008|0016": "1.2.840.10008.5.1.4.1.1.4", "0008|0018": pydicom.uid.generate_uid(), "0008|0060": "MR",
                "0020|000d": study, "0020|000e": series, "0020|0052": frame, "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{v:.6f}" for v in position), "0020|0037": orientation,
                "0010|0010": "Phantom^Test", "0010|0020": "P1", "0010|0030": "19700101", "0010|0040": "O",
                "0008|0020": "20260101", "0008|0030": "120000", "0008|0050": "A1", "0008|0090": "",
                "0020|0010": "1", "0020|0011": "1", "0018|0050": f"{image.GetSpacing()[2]:.4f}",
                "0028|0030": f"{image.GetSpacing()[1]:.4f}\\{image.GetSpacing()[0]:.4f}"}
        for tag, value in tags.items():
            item.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(item)
    return folder
