"""What `saunet segment` writes beside a label map: viewer tables, and a DICOM SEG for DICOM input."""

import json
import shlex
import subprocess
import sys

import numpy as np
import SimpleITK as sitk
from tests.helpers import write_dicom_series

from saunet.dicom_seg import numbered, read_dicom_seg
from saunet.imageio import read_volume
from saunet.label_tables import itksnap_table, slicer_table
from saunet.labels import LabelMap


def saunet(*args):
    return subprocess.run([sys.executable, "-m", "saunet.cli", *map(str, args)], capture_output=True, text=True)


def test_level_tables_name_every_level():
    names = LabelMap((1, 2, 3, 4, 5, 6, 7)).names()
    assert list(names.values()) == ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    slicer = slicer_table(names).splitlines()
    assert slicer[1] == "0 background 0 0 0 0" and slicer[-1].startswith("7 L5 ") and len(slicer) == 9
    rows = [shlex.split(line) for line in itksnap_table(names).splitlines() if not line.startswith("#")]
    assert [r[-1] for r in rows] == ["Clear Label", *names.values()] and all(len(r) == 8 for r in rows)
    assert LabelMap().names() == {1: "vertebral body"}
    assert numbered({3: "L1", 7: "L5"}) == {1: "T11", 2: "T12", 3: "L1", 4: "L2", 5: "L3", 6: "L4", 7: "L5"}


def test_dicom_series_gets_a_seg_with_the_same_mask(lumbar, tmp_path):
    """A real scan as an MR DICOM series: the SEG read back is the label map, frame by frame, on the series' grid."""
    image = sitk.ReadImage(str(lumbar / "imagesTr" / "lumbar_02_0000.nii.gz"))
    series = write_dicom_series(image, tmp_path / "series")
    out = tmp_path / "out" / "mask.nii.gz"
    result = saunet("segment", series, "-o", out, "--dicom-seg")
    assert result.returncode == 0, result.stderr
    mask = read_volume(out).array
    assert mask.sum() > 50_000
    seg = read_dicom_seg(tmp_path / "out" / "mask.seg.dcm", series)
    assert seg.shape == mask.shape and np.array_equal(seg, mask)
    assert json.loads((tmp_path / "out" / "mask.labels.json").read_text())["1"]["name"] == "vertebral body"
    assert (tmp_path / "out" / "mask.ctbl").exists() and (tmp_path / "out" / "mask.itksnap.txt").exists()


def test_dicom_seg_of_a_file_is_refused_before_anything_is_written(tmp_path, lumbar):
    out = tmp_path / "out" / "mask.nii.gz"
    scan = lumbar / "imagesTr" / "lumbar_02_0000.nii.gz"
    result = saunet("segment", scan, "-o", out, "--dicom-seg")
    assert result.returncode == 2 and "--dicom-seg" in result.stderr and str(scan) in result.stderr
    assert not out.parent.exists()


def test_an_empty_result_is_said_to_be_one(tmp_path):
    """A scan with nothing like a spine in it: the map is written, and stderr says that quality control failed
    it because no body was found."""
    from saunet.experiments.phantoms import make_phantom, phantom_volume
    from saunet.imageio import write_like

    volume = phantom_volume(make_phantom(0, shape=(9, 64, 64)), tmp_path / "x")
    flat = write_like(np.full(volume.array.shape, 100.0, np.float32), volume, tmp_path / "flat.nii.gz")
    result = saunet("segment", flat, "-o", tmp_path / "mask.nii.gz")
    assert result.returncode == 0 and (tmp_path / "mask.nii.gz").exists()
    assert "saunet: fail:" in result.stderr and "0 vertebral bodies found" in result.stderr
    assert str(flat) in result.stderr
