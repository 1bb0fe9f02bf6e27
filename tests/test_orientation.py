"""Array layouts: every scan reaches the model in one layout and every output lands on the input's own grid."""

import gzip
import io
import itertools
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from tests.helpers import write_image

from saunet.errors import InputError
from saunet.imageio import read_volume
from saunet.orientation import Layout, direction_from_code, layout_from_direction, volume_layout

SIGNED_PERMUTATIONS = [(order, flips) for order in itertools.permutations(range(3))
                       for flips in itertools.product((False, True), repeat=3)]


def relaid(image: sitk.Image, order, flips) -> sitk.Image:
    """The same scan in another array layout: ITK axes permuted and reversed, geometry updated to match."""
    return sitk.Flip(sitk.PermuteAxes(image, list(order)), list(flips))


@pytest.mark.parametrize("order,flips", SIGNED_PERMUTATIONS)
def test_every_layout_reaches_the_same_canonical_array(order, flips):
    """Any of the 48 axis orders and signs of one image gives the identical canonical array, and back."""
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.random((5, 6, 7)).astype(np.float32))
    image.SetDirection(tuple(direction_from_code("RPS").ravel()))
    canonical = layout_from_direction(np.array(image.GetDirection()).reshape(3, 3)).to_canonical(
        sitk.GetArrayFromImage(image))
    other = relaid(image, order, flips)
    layout = layout_from_direction(np.array(other.GetDirection()).reshape(3, 3))
    stored = sitk.GetArrayFromImage(other)
    assert np.array_equal(layout.to_canonical(stored), canonical)
    assert np.array_equal(layout.from_canonical(layout.to_canonical(stored)), stored)
    assert np.array_equal(layout.from_canonical(layout.to_canonical(stored)[None])[0], stored)  # leading axes


@pytest.mark.parametrize("axes,flips", [((0, 1, 2), (False, False, False)), ((2, 1, 0), (False, True, False)),
                                        ((1, 0, 2), (True, True, True)), ((2, 0, 1), (False, False, True))])
def test_a_canonical_box_holds_the_same_voxels_in_the_stored_array(axes, flips):
    layout = Layout(axes, flips)
    stored = np.random.default_rng(1).random((5, 6, 7))
    canonical = layout.to_canonical(stored)
    box = (slice(1, 4), slice(0, 2), slice(3, canonical.shape[2]))
    cut = stored[layout.stored_box(box, canonical.shape)]
    assert np.array_equal(layout.from_canonical(canonical[box]), cut)


def test_oblique_direction_takes_the_nearest_axes():
    angle = np.radians(18)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    layout = layout_from_direction(rotation @ direction_from_code("RPS"))
    assert layout.axes == layout_from_direction(direction_from_code("RPS")).axes
    assert layout.obliquity == pytest.approx(18.0, abs=1e-6)


@pytest.mark.parametrize("direction,problem", [
    (np.array([[1, 0.7071, 0], [0, 0.7071, 0], [0, 0, 1]]), "not orthonormal"),
    (np.array([[0.7071, -0.7071, 0], [0.7071, 0.7071, 0], [0, 0, 1]]), "degenerate"),
    (np.full((3, 3), np.nan), "NaN"),
])
def test_unusable_directions_are_refused(direction, problem):
    with pytest.raises(InputError, match=problem):
        layout_from_direction(direction, "scan.nii.gz")


def test_orientation_code_and_slice_axis_override_the_header(tmp_path):
    bare = nib.Nifti1Image(np.zeros((7, 8, 9), np.uint8), np.eye(4))
    bare.set_qform(None, code=0)
    bare.set_sform(None, code=0)
    nib.save(bare, tmp_path / "bare.nii.gz")
    volume = read_volume(tmp_path / "bare.nii.gz")
    with pytest.raises(InputError, match="no orientation.*--orientation"):
        volume_layout(volume)
    identity = read_volume(write_image(np.zeros((9, 8, 7), np.uint8), tmp_path / "identity.mha"))
    with pytest.raises(InputError, match="no orientation"):
        volume_layout(identity)
    assert volume_layout(volume, orientation="rps") == Layout((2, 0, 1), (False, False, False))
    assert volume_layout(volume, slice_axis=1) == Layout((1, 0, 2), (False, False, False))
    for bad in ("RPX", "RRS", "RP"):
        with pytest.raises(InputError, match="orientation"):
            volume_layout(volume, orientation=bad)


def world_dice(path: Path, original: sitk.Image, original_mask: np.ndarray) -> float:
    """Dice of the mask in ``path`` against ``original_mask``, compared voxel by voxel in world coordinates."""
    back = sitk.Resample(sitk.ReadImage(str(path)), original, sitk.Transform(), sitk.sitkNearestNeighbor)
    mask = sitk.GetArrayFromImage(back) > 0
    return 2 * float((mask & original_mask).sum()) / float(mask.sum() + original_mask.sum())


def test_real_scan_in_every_layout_gives_the_same_mask(lumbar, tmp_path):
    """The 6 axis orders x 4 in-plane flips of a real scan, each with a correct header, segmented by the shipped
    model: every mask, read back in world coordinates, is the original's."""
    from saunet.imageio import write_like
    from saunet.inference import Segmenter

    source = lumbar / "imagesTr" / "lumbar_02_0000.nii.gz"
    original = sitk.ReadImage(str(source))
    segmenter = Segmenter()
    reference = segmenter.segment(read_volume(source)).labels > 0
    assert reference.sum() > 50_000  # seven bodies of ~30 cm³ at 2 x 1.25 x 1.25 mm
    worst = 1.0
    for order in itertools.permutations(range(3)):
        for flip_j, flip_k in itertools.product((False, True), repeat=2):
            image = relaid(original, order, (False, flip_j, flip_k))
            path = tmp_path / f"scan_{''.join(map(str, order))}{int(flip_j)}{int(flip_k)}.nii.gz"
            sitk.WriteImage(image, str(path))
            volume = read_volume(path)
            out = write_like(segmenter.segment(volume).labels, volume, tmp_path / f"mask_{path.name}")
            worst = min(worst, world_dice(out, original, reference))
    print(f"worst Dice over 24 layouts: {worst:.6f}")
    assert worst >= 0.999


def test_a_scan_handed_to_the_fallback_gets_the_same_mask_in_another_layout(lumbar, tmp_path):
    """An inverted real scan (the ensemble's result is in doubt, the fallback takes over) stored with its axes
    permuted and one flipped: the fallback's mask, read back in world coordinates, is the one of the original layout."""
    from saunet.imageio import write_like
    from saunet.inference import Segmenter

    original = sitk.ReadImage(str(lumbar / "imagesTr" / "lumbar_07_0000.nii.gz"), sitk.sitkFloat32)
    stats = sitk.StatisticsImageFilter()
    stats.Execute(original)
    inverted = stats.GetMaximum() - original
    sitk.WriteImage(inverted, str(tmp_path / "inverted.nii.gz"))
    segmenter = Segmenter()
    result, verdict = segmenter.segment_checked(read_volume(tmp_path / "inverted.nii.gz"))
    assert [Path(path).stem for path in result.model] == ["spine_levels_sau_net_curves", "spine_levels_sau_net_curves_seed1"]
    assert verdict.reasons[0].startswith("segmented by the fallback model")  # whatever the verdict, said
    reference = result.labels > 0
    path = tmp_path / "relaid.nii.gz"
    sitk.WriteImage(relaid(inverted, (2, 0, 1), (False, True, False)), str(path))
    volume = read_volume(path)
    relaid_result, _ = segmenter.segment_checked(volume)
    assert relaid_result.model == result.model
    out = write_like(relaid_result.labels, volume, tmp_path / "mask_relaid.nii.gz")
    assert world_dice(out, inverted, reference) >= 0.999


def test_water_fat_layout_is_segmented(lumbar):
    """lumbar-water-fat stores (caudal, posterior) in-plane: the shipped model finds bodies there, not nothing."""
    from saunet.inference import Segmenter

    path = lumbar.parent / "lumbar-water-fat" / "imagesTr" / "waterfat_01_0000.nii.gz"
    volume = read_volume(path)
    assert volume_layout(volume).axes == (2, 1, 0) and volume_layout(volume).flips == (False, True, False)
    mask = Segmenter().segment(volume).labels > 0
    reference = read_volume(lumbar.parent / "lumbar-water-fat" / "labelsTr" / "waterfat_01.nii.gz").array > 0
    print(f"waterfat_01: {int(mask.sum())} mm^3 segmented, {int((mask & reference).sum())} of them in L1-L5")
    assert mask.sum() > 10_000 and (mask & reference).sum() > 0.5 * mask.sum()


# --- headers that lie -------------------------------------------------------------------------------------


def nifti_with(tmp_path: Path, name: str, edit) -> Path:
    """A small valid scan saved as NIfTI, then ``edit(header)`` applied to the header bytes as stored (nibabel's
    save would repair them)."""
    image = nib.Nifti1Image(np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8), np.diag([-2.0, 1.0, 1.0, 1.0]))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    path = tmp_path / f"{name}.nii.gz"
    nib.save(image, path)
    raw = gzip.decompress(path.read_bytes())
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw), check=False)
    edit(header)
    stored = io.BytesIO()
    header.write_to(stored)
    path.write_bytes(gzip.compress(stored.getvalue() + raw[len(stored.getvalue()):]))
    return path


def set_field(field, values):
    def edit(header):
        data = header[field].copy() if np.ndim(header[field]) else header[field]
        if np.ndim(data):
            for index, value in values.items():
                data[index] = value
        else:
            data = values
        header[field] = data
    return edit


BAD_HEADERS = {
    "pixdim zero": (set_field("pixdim", {1: 0.0}), "spacing"),
    "pixdim negative": (set_field("pixdim", {2: -1.0}), "spacing"),
    "pixdim NaN": (set_field("pixdim", {3: np.nan}), "spacing"),
    "pixdim infinite": (set_field("pixdim", {1: np.inf}), "spacing"),
    "sform NaN": (lambda h: [h.__setitem__(f, np.full(4, np.nan)) for f in ("srow_x", "srow_y", "srow_z")], "sform"),
    "qform NaN": (set_field("quatern_b", np.nan), "qform"),
}


@pytest.mark.parametrize("name", BAD_HEADERS)
def test_lying_headers_are_refused(tmp_path, name):
    edit, problem = BAD_HEADERS[name]
    path = nifti_with(tmp_path, name.replace(" ", "_"), edit)
    with pytest.raises(InputError, match=problem):
        read_volume(path)


def test_nan_scaling_slope_means_no_scaling(tmp_path):
    path = nifti_with(tmp_path, "slope", set_field("scl_slope", np.nan))
    assert read_volume(path).array.max() == 6 * 7 * 8 - 1


def test_damaged_compressed_stream_is_refused(tmp_path):
    """Single-byte flips anywhere in the deflate stream or its CRC trailer: each is refused, none read as voxels."""
    good = nifti_with(tmp_path, "good", lambda h: None)
    data = good.read_bytes()
    assert gzip.decompress(data)
    positions = np.linspace(12, len(data) - 1, 12).astype(int)
    for position in positions:
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        path = tmp_path / f"flip_{position}.nii.gz"
        path.write_bytes(bytes(damaged))
        with pytest.raises(InputError, match="corrupt|not a readable"):
            read_volume(path)


def test_lying_header_ends_in_one_line_and_writes_nothing(tmp_path):
    path = nifti_with(tmp_path, "nan_spacing", set_field("pixdim", {1: np.nan}))
    out = tmp_path / "mask.nii.gz"
    run = subprocess.run([sys.executable, "-m", "saunet.cli", "segment", str(path), "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and not out.exists()
    assert run.stderr.count("\n") == 1 and str(path) in run.stderr and "spacing" in run.stderr


@pytest.mark.parametrize("slice_mm,in_plane_mm", [(1.0, 0.5), (2.0, 1.25), (4.4, 0.9)])
def test_chain_at_clinical_slice_spacings(tmp_path, tiny_checkpoint, slice_mm, in_plane_mm):
    """Thin and thick stacks: every native slice reaches the network at the model's in-plane spacing (never
    resampled across), and the label map comes back on the input's grid, relaid in a water-fat-like layout."""
    from saunet.experiments.phantoms import make_phantom, phantom_volume
    from saunet.imageio import same_geometry, write_like
    from saunet.inference import Segmenter

    slices = int(round(44 / slice_mm))
    size = int(round(200 / in_plane_mm))
    phantom = make_phantom(3, shape=(slices, size, size), spacing=(slice_mm, in_plane_mm, in_plane_mm))
    volume = phantom_volume(phantom, tmp_path / "scan.nii.gz")
    path = tmp_path / "relaid.nii.gz"
    sitk.WriteImage(relaid(volume.reference, (0, 2, 1), (False, True, False)), str(path))
    relaid_volume = read_volume(path)
    segmenter = Segmenter(tiny_checkpoint)
    layout = volume_layout(relaid_volume)
    grid = segmenter.preprocessor.grid(relaid_volume.array.shape, relaid_volume.spacing, layout)
    assert grid.native_shape[0] == slices and grid.native_spacing[0] == pytest.approx(slice_mm)
    target = segmenter.preprocessor.settings.in_plane_spacing
    assert grid.network_shape[1] == round(size * in_plane_mm / target)
    result = segmenter.segment(relaid_volume)
    out = read_volume(write_like(result.labels, relaid_volume, tmp_path / "mask.nii.gz"))
    assert same_geometry(out, relaid_volume) is None
    assert np.array_equal(layout.to_canonical(out.array), volume_layout(volume).to_canonical(
        segmenter.segment(volume).labels))


def test_a_strongly_oblique_scan_is_segmented_with_a_warning(tmp_path, tiny_checkpoint):
    from saunet.experiments.phantoms import make_phantom, phantom_volume

    volume = phantom_volume(make_phantom(1, shape=(7, 48, 48)), tmp_path / "x")
    image = volume.reference
    angle = np.radians(30)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    image.SetDirection(tuple((rotation @ np.array(image.GetDirection()).reshape(3, 3)).ravel()))
    path = tmp_path / "oblique.nii.gz"
    sitk.WriteImage(image, str(path))
    out = tmp_path / "mask.nii.gz"
    run = subprocess.run([sys.executable, "-m", "saunet.cli", "segment", str(path), "-o", str(out), "--model",
                          str(tiny_checkpoint)], capture_output=True, text=True)
    assert run.returncode == 0 and out.exists()
    assert "30 degrees oblique" in run.stderr and str(path) in run.stderr
