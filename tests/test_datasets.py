import numpy as np
import pytest
from tests.helpers import phantom_pair

from saunet.datasets import check_dataset, detect_layout, list_cases, read_case
from saunet.errors import InputError
from saunet.experiments.phantoms import make_phantom, write_cohort
from saunet.labels import LabelMap


def test_nnunet_layout_of_the_real_data(lumbar):
    cases = list_cases(lumbar)
    assert len(cases) == 12 and cases[0].name == "lumbar_02"
    assert all(c.label is not None and c.label.name == f"{c.name}.nii.gz" for c in cases)


def test_mrspineseg_layout(tmp_path):
    for i in (1, 2):
        phantom_pair(tmp_path, f"MR/Case{i}.nii.gz", f"Mask/mask_case{i}.nii.gz", seed=i)
    assert detect_layout(tmp_path) == "mrspineseg"
    cases = list_cases(tmp_path)
    assert [c.name for c in cases] == ["case1", "case2"]
    assert cases[1].label.name == "mask_case2.nii.gz"
    image, label = read_case(cases[0])
    assert image.array.shape == label.array.shape


def test_spider_layout_with_mha(tmp_path):
    phantom_pair(tmp_path, "images/1_t2.mha", "masks/1_t2.mha")
    phantom_pair(tmp_path, "images/2_t2.mha", "masks/2_t2.mha", seed=3)
    assert detect_layout(tmp_path) == "spider"
    cases = list_cases(tmp_path)
    assert [c.name for c in cases] == ["1_t2", "2_t2"] and cases[0].label.suffix == ".mha"


def test_plain_folders_paired_by_name(tmp_path):
    phantom_pair(tmp_path, "images/a.nrrd", "labels/a.nrrd")
    phantom_pair(tmp_path, "images/b.nrrd", "labels/other.nrrd")
    cases = {c.name: c for c in list_cases(tmp_path)}
    assert cases["a"].label is not None and cases["b"].label is None
    with pytest.raises(InputError, match="no label"):
        read_case(cases["b"])


def test_unknown_layout_is_refused(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(InputError, match="not a known data-set layout"):
        list_cases(tmp_path)


def test_label_map_binary_and_classes():
    label = np.array([0, 1, 2, 3, 19])
    assert LabelMap().apply(label).tolist() == [0, 1, 1, 1, 1]
    assert LabelMap((3, 1)).apply(label).tolist() == [0, 2, 0, 1, 0]
    assert LabelMap.from_dict(LabelMap((3, 1)).to_dict()) == LabelMap((3, 1))


def test_check_data_reports_every_case(tmp_path):
    write_cohort(tmp_path, 2, seed=0, shape=(7, 40, 40))
    rows = check_dataset(tmp_path)
    assert [r["problem"] for r in rows] == ["ok", "ok"]
    assert rows[0]["shape"] == "7x40x40" and rows[0]["foreground"] > 0


def test_phantoms_are_seeded_and_spine_like():
    a, b = make_phantom(seed=4, shape=(13, 96, 96)), make_phantom(seed=4, shape=(13, 96, 96))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert not np.array_equal(a.image, make_phantom(seed=5, shape=(13, 96, 96)).image)
    assert set(np.unique(a.label)) == {0, 1, 2, 3, 4, 5}
    # vertebral bodies run cranial (label 1) to caudal along the last axis
    centres = [np.argwhere(a.label == k)[:, 2].mean() for k in range(1, 6)]
    assert centres == sorted(centres, reverse=True)
    big = make_phantom(seed=1, shape=(15, 512, 512))
    assert big.image.shape == (15, 512, 512) and big.label.max() == 5
