"""Reading and writing medical images with their geometry (SimpleITK does the formats).

Arrays are in SimpleITK's order: numpy axis a is ITK index axis (ndim - 1 - a).
"""

from __future__ import annotations

import gzip
import io
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from saunet.errors import InputError
from saunet.files import atomic_path
from saunet.orientation import check_direction

# ITK and VNL print warnings (oblique NIfTI, non-orthogonal q/sform...) straight to stderr; saunet checks the
# headers itself and says what is wrong in one line.
sitk.ProcessObject_SetGlobalWarningDisplay(False)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")


@dataclass
class Volume:
    """A 3D image: ``array`` in SimpleITK's (k, j, i) order and the SimpleITK image that carries its geometry."""

    array: np.ndarray
    reference: sitk.Image
    path: Path
    # False when the file says nothing of orientation: a NIfTI with neither qform nor sform, or another format
    # with an identity direction (what writers store when they have none).
    oriented: bool = True

    @property
    def spacing(self) -> tuple[float, ...]:
        """Spacing of each numpy axis, in mm."""
        return tuple(reversed(self.reference.GetSpacing()))

    @property
    def direction(self) -> np.ndarray:
        """3x3 direction matrix whose column c is the world direction of ITK index axis c (LPS world)."""
        return np.array(self.reference.GetDirection()).reshape(3, 3)

    @property
    def origin(self) -> tuple[float, ...]:
        return self.reference.GetOrigin()


def image_suffix(path: Path) -> str:
    """The file-format ending of ``path`` ('' for a folder)."""
    name = path.name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), path.suffix.lower())


def is_image_file(path: Path) -> bool:
    """A file whose ending names an image format saunet reads."""
    return path.is_file() and image_suffix(path) in IMAGE_SUFFIXES


def case_name(path: Path) -> str:
    """File name without its image ending: 'lumbar_02_0000.nii.gz' -> 'lumbar_02_0000'."""
    suffix = image_suffix(path)
    return path.name[: len(path.name) - len(suffix)] if suffix else path.name


def case_id(path: Path) -> str:
    """The case a file belongs to, without nnU-Net's channel suffix: 'lumbar_02_0000.nii.gz' -> 'lumbar_02'."""
    return re.sub(r"_\d{4}$", "", case_name(path))


def _read_sitk(path: Path) -> sitk.Image:
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        series = reader.GetGDCMSeriesIDs(str(path))
        if not series:
            raise InputError(path, "folder holds no DICOM series")
        if len(series) > 1:
            raise InputError(path, f"folder holds {len(series)} DICOM series; give one series per folder")
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
        try:
            return reader.Execute()
        except RuntimeError as err:
            raise InputError(path, f"unreadable DICOM series ({_first_line(err)})") from None
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InputError(path, f"not a readable image ({_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if "Exception" not in line and "sitk::" not in line), lines[-1] if lines else "")
    return detail[:160]


def read_volume(path: str | Path) -> Volume:
    """Read a 3D scalar image (NIfTI, MetaImage, NRRD, or a DICOM series folder) with its geometry.

    Raises :class:`InputError` for a missing, empty, corrupt, non-3D, multi-component or non-finite image.
    """
    path = Path(path)
    image = _read_sitk(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"image has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected 1")
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3 or min(image.GetSize()) < 1:
        raise InputError(path, f"image is {image.GetDimension()}D with size {image.GetSize()}; expected a 3D volume")
    if image.GetSize()[2] == 1 and image.GetSize()[0] > 1:
        raise InputError(path, f"image is a single 2D slice (size {image.GetSize()}); expected a 3D volume")
    if image_suffix(path) in (".nii", ".nii.gz"):
        oriented = _check_nifti(path)
    else:
        oriented = not np.allclose(np.array(image.GetDirection()), np.eye(3).ravel())
    _check_geometry(image, path)
    array = sitk.GetArrayFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InputError(path, f"image holds {int((~np.isfinite(array)).sum())} NaN or infinite values")
    return Volume(array, image, path, oriented)


def _check_geometry(image: sitk.Image, path: Path) -> None:
    """Refuse a grid no output could be trusted on: spacing not finite and positive, origin not finite,
    direction not finite and orthonormal."""
    spacing = np.array(image.GetSpacing())
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise InputError(path, f"voxel spacing {tuple(spacing.tolist())} is not finite and positive")
    if not np.isfinite(image.GetOrigin()).all():
        raise InputError(path, "origin holds NaN or infinite values")
    check_direction(np.array(image.GetDirection()).reshape(3, 3), path)


def _nibabel():
    """nibabel, imported without pydicom where pydicom is not imported yet: nibabel imports it only to decode DICOM
    header extensions, which saunet never reads, and pydicom's import is most of nibabel's cost in every
    `saunet segment` process (reports/speed-ups.md)."""
    if "nibabel" in sys.modules or "pydicom" in sys.modules:
        import nibabel

        return nibabel
    sys.modules["pydicom"] = None  # an import of it fails here: nibabel finds it absent
    try:
        import nibabel
    finally:
        del sys.modules["pydicom"]
    return nibabel


def _check_nifti(path: Path) -> bool:
    """Refuse what ITK's NIfTI reader lets through: a damaged compressed stream (it checks no CRC), a truncated
    file, NaN voxels (it turns them into 0), and pixdim or s/qform values it replaces by defaults (NaN spacing
    comes back as 1 mm). Returns whether the header holds an orientation (a qform or sform code)."""
    nibabel = _nibabel()
    try:
        raw = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            raw = gzip.decompress(raw)  # reads to the end, so the CRC and length are checked
        image_class = nibabel.Nifti2Image if raw[4:7] == b"n+2" else nibabel.Nifti1Image
        header = image_class.header_class.from_fileobj(io.BytesIO(raw), check=False)  # as stored, not repaired
        data = np.asarray(image_class.from_bytes(raw).dataobj)
    except (OSError, EOFError, zlib.error, ValueError, nibabel.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"truncated or corrupt image data ({_first_line(err) or type(err).__name__})") from None
    pixdim = np.asarray(header["pixdim"][1:4], dtype=np.float64)
    if not (np.isfinite(pixdim).all() and (pixdim > 0).all()):
        raise InputError(path, f"voxel spacing (pixdim) {tuple(pixdim.tolist())} is not finite and positive")
    if int(header["sform_code"]) > 0 and not np.isfinite(header.get_sform()).all():
        raise InputError(path, "sform holds NaN or infinite values")
    quaternion = [header[k] for k in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")]
    if int(header["qform_code"]) > 0 and not np.isfinite(np.asarray(quaternion, dtype=np.float64)).all():
        raise InputError(path, "qform holds NaN or infinite values")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise InputError(path, f"image holds {int((~np.isfinite(data)).sum())} NaN or infinite values")
    return int(header["sform_code"]) > 0 or int(header["qform_code"]) > 0


def same_geometry(a: Volume, b: Volume, tol: float = 1e-4) -> str | None:
    """None when ``a`` and ``b`` share a grid, else what differs."""
    if a.array.shape != b.array.shape:
        return f"shape {a.array.shape} differs from {b.array.shape}"
    for what, x, y in (("spacing", a.spacing, b.spacing), ("origin", a.origin, b.origin)):
        if not np.allclose(x, y, atol=tol):
            return f"{what} {tuple(round(v, 4) for v in x)} differs from {tuple(round(v, 4) for v in y)}"
    if not np.allclose(a.direction, b.direction, atol=tol):
        return "direction differs"
    return None


def write_like(array: np.ndarray, reference: Volume, path: str | Path) -> Path:
    """Write ``array`` on ``reference``'s grid (shape, spacing, origin, direction) to ``path`` atomically.

    The file is written under a temporary name in the same folder, then renamed, so a failure leaves
    nothing half-written.
    """
    path = Path(path)
    if array.shape != reference.array.shape:
        raise ValueError(f"array shape {array.shape} differs from the reference {reference.array.shape}")
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference.reference)
    with atomic_path(path, suffix=image_suffix(path) or ".nii.gz") as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return path


def output_suffix(input_path: Path) -> str:
    """The output format for a prediction of ``input_path``: the input's, or NIfTI for a DICOM folder."""
    if input_path.is_dir():
        return ".nii.gz"
    # Detached headers (.mhd + .raw) cannot be renamed into place atomically: write the single-file twin.
    return {".mhd": ".mha", ".nhdr": ".nrrd"}.get(image_suffix(input_path), image_suffix(input_path))
