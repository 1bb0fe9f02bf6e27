"""The checkpoint record, the label decoding every stage shares, and post-processing's one entry point."""

import numpy as np
import pytest
import torch

from saunet.checkpoints import METADATA_KEYS, Checkpoint
from saunet.errors import InputError
from saunet.files import atomic_path
from saunet.labels import LabelMap
from saunet.postprocessing import PostprocessingSettings, postprocess


def test_checkpoint_round_trips_and_builds_its_model(tiny_checkpoint, tmp_path):
    checkpoint = Checkpoint.load(tiny_checkpoint)
    assert checkpoint.model == "sau-net" and checkpoint.epoch >= 1 and checkpoint.optimizer is not None
    slim = Checkpoint.load(checkpoint.save(tmp_path / "slim.pt", with_optimizer=False))
    assert slim.optimizer is None and slim.metadata() == checkpoint.metadata()
    assert set(slim.metadata()) == set(METADATA_KEYS)
    x = torch.randn(1, 1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(slim.build_model()(x), checkpoint.build_model()(x))
    assert isinstance(slim.postprocessing, PostprocessingSettings) and slim.postprocessing.max_components > 1


def test_foreign_files_are_not_checkpoints(tmp_path):
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a saunet checkpoint"):
        Checkpoint.load(tmp_path / "other.pt")


def test_decoding_is_the_argmax_of_background_and_classes():
    binary = np.array([[0.2, 0.5, 0.51, 0.9]], dtype=np.float32)
    assert LabelMap().decode(binary).tolist() == [0, 0, 1, 1]
    three = np.array([[0.1, 0.3, 0.5, 0.2], [0.1, 0.36, 0.1, 0.7]], dtype=np.float32)  # background 0.8, 0.34, 0.4, 0.1
    assert LabelMap((3, 5)).decode(three).tolist() == [0, 2, 1, 2]
    assert LabelMap((3, 5)).values(np.array([0, 1, 2])).tolist() == [0, 3, 5]
    logits = np.array([[0.0, 1.0], [2.0, -1.0], [1.0, 0.5]], dtype=np.float32)
    assert np.allclose(LabelMap((3, 5)).probabilities(logits).sum(0) < 1, True)


def test_validation_dice_equals_evaluate_dice(tmp_path):
    """The Dice training validates with and the Dice `saunet evaluate` reports agree on the same prediction."""
    from tests.helpers import write_image

    from saunet.evaluation import evaluate_pair
    from saunet.training import mean_class_dice

    rng = np.random.default_rng(0)
    probabilities = rng.random((1, 6, 20, 20)).astype(np.float32)
    reference = (rng.random((6, 20, 20)) > 0.4).astype(np.uint8)
    predicted = LabelMap().decode(probabilities)
    validation = mean_class_dice(predicted, reference, 1)
    pred = write_image(predicted, tmp_path / "pred.nii.gz")
    ref = write_image(reference, tmp_path / "ref.nii.gz")
    assert validation == pytest.approx(evaluate_pair(pred, ref)["dice"], abs=1e-12)
    assert 0.3 < validation < 0.9


def test_postprocess_removes_islands_and_keeps_classes():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:4, 1:4, 1:4] = 2
    labels[1:4, 1:4, 4:6] = 3  # touches the first: one component of two classes
    labels[8, 8, 8] = 1  # an island of 1 mm^3
    out = postprocess(labels, (1.0, 1.0, 1.0), PostprocessingSettings(min_component_mm3=5))
    assert out[8, 8, 8] == 0 and np.array_equal(out[:7], labels[:7])


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []
