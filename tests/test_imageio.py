import numpy as np
import pytest
import SimpleITK as sitk
import torch
from tests.helpers import write_image

from saunet.errors import InputError
from saunet.experiments.phantoms import make_phantom, phantom_volume
from saunet.imageio import read_volume, same_geometry, write_like
from saunet.labels import LabelMap
from saunet.orientation import Layout, volume_layout
from saunet.preprocessing import PreprocessingSettings, Preprocessor, resize_in_plane


def test_real_scans_round_trip_with_identical_geometry(lumbar, tmp_path):
    import nibabel as nib

    for image_path in sorted((lumbar / "imagesTr").glob("*.nii.gz"))[:3]:
        label_path = lumbar / "labelsTr" / image_path.name.replace("_0000", "")
        image, label = read_volume(image_path), read_volume(label_path)
        assert volume_layout(image).slice_axis == 2  # nibabel's axis 0 is SimpleITK's last
        pre = Preprocessor(PreprocessingSettings(in_plane_spacing=None))
        grid = pre.grid(image.array.shape, image.spacing, volume_layout(image))
        assert grid.native_shape == (39, 305, 305) and grid.native_spacing[0] == pytest.approx(2.0)
        assert pre.image(image.array, grid).shape == (39, 305, 305)
        onehot = pre.label(label.array, grid)[None].astype(np.float32)
        restored = pre.inverse(onehot, grid)[0].round().astype(np.uint8)
        assert np.array_equal(restored, label.array)
        out = write_like(restored, image, tmp_path / label_path.name)
        original, written = nib.load(label_path), nib.load(out)
        assert written.shape == original.shape
        assert np.allclose(written.affine, original.affine, atol=1e-4)
        assert np.array_equal(np.asarray(written.dataobj), np.asarray(original.dataobj))


def test_resampled_grid_inverts_to_the_original_shape(lumbar):
    image = read_volume(lumbar / "imagesTr" / "lumbar_02_0000.nii.gz")
    pre = Preprocessor(PreprocessingSettings(in_plane_spacing=2.5))
    grid = pre.grid(image.array.shape, image.spacing, volume_layout(image))
    assert grid.network_shape == (39, 152, 152)
    net = pre.image(image.array, grid)
    assert net.dtype == np.float32 and abs(net.mean()) < 0.02  # normalised before area resampling
    back = pre.inverse(np.zeros((1, *grid.network_shape), np.float32), grid)
    assert back.shape == (1, *image.array.shape)


@pytest.mark.parametrize("layout", [Layout((0, 1, 2), (False, False, False)), Layout((1, 2, 0), (True, False, True))])
def test_foreground_box_holds_every_voxel_decoded_as_foreground(layout):
    """Logits resampled inside the box equal the whole resampling there, and outside it nothing decodes as
    foreground, also where background only just outscores the classes (the classes' probabilities together
    above 1/2); where no pixel decodes as foreground there is no box."""
    rng = np.random.default_rng(3)
    pre = Preprocessor(PreprocessingSettings(in_plane_spacing=1.875))
    labels = LabelMap((1, 2, 3))
    stored_shape = tuple(np.array((9, 61, 47))[np.argsort(layout.axes)])
    grid = pre.grid(stored_shape, (1.25, 1.25, 1.25), layout)
    logits = rng.normal(0, 0.15, (4, *grid.network_shape)).astype(np.float32)
    logits[0] += 1.0  # background ahead by a little, so its probability is below 1/2 in many pixels
    logits[1:, 3:5, 10:14, 8:12] += rng.uniform(1.0, 2.0, (3, 2, 4, 4))
    logits[2, 6, 20, 20] = 3.0
    assert (labels.probabilities(logits).sum(0) > 0.5).sum() > (labels.decoded_as_foreground(logits)).sum()
    box = pre.foreground_box(labels.decoded_as_foreground(logits), grid)
    whole = pre.inverse(logits, grid)
    stored_box = layout.stored_box(box, grid.native_shape)
    assert np.allclose(pre.inverse(logits, grid, box), whole[(slice(None), *stored_box)], atol=1e-6)
    outside = np.ones(stored_shape, bool)
    outside[stored_box] = False
    decoded = labels.decode(labels.probabilities(whole))
    assert decoded[outside].max() == 0 and decoded[stored_box].max() > 0
    assert pre.foreground_box(labels.decoded_as_foreground(logits - 10 * (np.arange(4) > 0)[:, None, None, None]),
                              grid) is None


@pytest.mark.parametrize(("mode", "torch_mode", "size_in", "size_out"), [
    ("image", "area", (305, 31), (152, 12)),  # shrinking by ratios that are not whole numbers
    ("image", "bilinear", (152, 12), (305, 31)),
    ("bilinear", "bilinear", (40, 9), (17, 20)),
    ("nearest", "nearest-exact", (305, 7), (152, 20)),
])
def test_numpy_resampling_matches_torch_interpolate(mode, torch_mode, size_in, size_out):
    slices = np.random.default_rng(0).normal(size=(3, 2, *size_in)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(slices), size=size_out, mode=torch_mode,
                                               **({"align_corners": False} if torch_mode == "bilinear" else {}))
    assert np.allclose(resize_in_plane(slices, size_out, mode), expected.numpy(), atol=1e-4)  # torch rounds its scale to float32


def test_segmenting_with_onnx_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    volume = phantom_volume(make_phantom(2, shape=(9, 64, 64)), tmp_path / "scan")
    path = write_like(volume.array, volume, tmp_path / "scan.nii.gz")
    code = ("import sys; from saunet.cli import main; main(['segment', sys.argv[1], '-o', sys.argv[2]]);"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "mask.nii.gz")], check=True)
    assert read_volume(tmp_path / "mask.nii.gz").array.shape == volume.array.shape


def test_reading_nifti_leaves_pydicom_unimported_and_importable(tmp_path):
    import subprocess
    import sys

    volume = phantom_volume(make_phantom(2, shape=(9, 64, 64)), tmp_path / "scan")
    path = write_like(volume.array, volume, tmp_path / "scan.nii.gz")
    code = ("import sys; from saunet.imageio import read_volume; read_volume(sys.argv[1]);"
            "assert 'nibabel' in sys.modules and 'pydicom' not in sys.modules, sorted(sys.modules);"
            "import pydicom; pydicom.Dataset()")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_formats_round_trip_geometry(tmp_path, suffix):
    volume = phantom_volume(make_phantom(1, shape=(5, 24, 28)), tmp_path / "x")
    path = write_like(volume.array, volume, tmp_path / f"img{suffix}")
    back = read_volume(path)
    assert same_geometry(back, volume) is None
    assert np.allclose(back.array, volume.array)
    assert volume_layout(back).slice_axis == 0


def test_slice_axis_stored_last_is_found(tmp_path):
    array = np.zeros((30, 32, 9), dtype=np.uint8)  # numpy axis 2 = ITK axis 0 runs left-right
    direction = (1, 0, 0, 0, 0, 1, 0, -1, 0)
    path = write_image(array, tmp_path / "a.nii.gz", spacing=(4.0, 1.0, 1.0), direction=direction)
    assert volume_layout(read_volume(path)).slice_axis == 2


def test_dicom_series_folder_is_read(tmp_path):
    volume = phantom_volume(make_phantom(2, shape=(4, 20, 24)), tmp_path / "x")
    image = sitk.Cast(sitk.GetImageFromArray(volume.array.astype(np.int16)), sitk.sitkInt16)
    image.SetSpacing(volume.reference.GetSpacing())
    series = tmp_path / "dicom"
    series.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        s = image[:, :, k]
        s.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.1")
        s.SetMetaData("0020|0013", str(k))
        s.SetMetaData("0020|0032", "0\\0\\%f" % (k * image.GetSpacing()[2]))
        s.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        s.SetMetaData("0008|0060", "MR")
        writer.SetFileName(str(series / f"{k:03d}.dcm"))
        writer.Execute(s)
    back = read_volume(series)
    assert back.array.shape == image.GetSize()[::-1]
    assert np.allclose(back.spacing[1:], volume.spacing[1:], atol=1e-3)


def test_mismatched_geometry_is_reported(tmp_path):
    a = read_volume(write_image(np.zeros((4, 5, 6), np.uint8), tmp_path / "a.nii.gz"))
    b = read_volume(write_image(np.zeros((4, 5, 6), np.uint8), tmp_path / "b.nii.gz", spacing=(1, 2, 1)))
    assert "spacing" in same_geometry(a, b)


def test_nan_image_is_refused(tmp_path):
    array = np.zeros((3, 4, 5), np.float32)
    array[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        read_volume(write_image(array, tmp_path / "n.nii.gz"))
