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


@pytest.mark.parametrize("classes", [None, (1, 2, 3, 4, 5, 6, 7)])
def test_foreground_from_logits_is_what_decoding_their_probabilities_gives(classes):
    labels = LabelMap(classes)
    logits = np.random.default_rng(1).normal(0, 2, (labels.network_channels, 4000)).astype(np.float32)
    assert np.array_equal(labels.decoded_as_foreground(logits), labels.decode(labels.probabilities(logits)) > 0)


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


def column(levels: list[int], votes: list[int], gap: int = 3, height: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A column of bodies from the top (array index 0 at superior when read with sign -1) down: the bodies'
    true ``levels`` (0: no level, e.g. the sacrum; -1: no body found there) and the level each one's
    probabilities favour (``votes``)."""
    depth = len(levels) * (height + gap) + gap
    truth = np.zeros((depth, 8, 3), np.uint8)
    probabilities = np.zeros((7, depth, 8, 3), np.float32)
    for i, (level, vote) in enumerate(zip(levels, votes)):
        if level < 0:
            continue
        rows = slice(gap + i * (height + gap), gap + i * (height + gap) + height)
        truth[rows, 1:7] = level
        probabilities[vote - 1, rows, 1:7] = 0.6
        probabilities[:, rows, 1:7] += 0.05
    return truth, probabilities


@pytest.mark.parametrize("case,levels,votes", [
    ("every level", [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7]),
    ("T11 and T12 out of view", [3, 4, 5, 6, 7], [3, 4, 5, 6, 7]),
    ("two bodies vote L2", [1, 2, 3, 4, 5, 6, 7], [1, 2, 4, 4, 5, 6, 7]),
    ("a body votes wrongly", [2, 3, 4, 5, 6, 7], [2, 3, 6, 5, 6, 7]),
    ("a sacrum below L5 votes L5", [1, 2, 3, 4, 5, 6, 7, 0], [1, 2, 3, 4, 5, 6, 7, 7]),
    ("a T10 above T11 votes T11", [0, 1, 2, 3, 4, 5, 6, 7], [1, 1, 2, 3, 4, 5, 6, 7]),
    ("L2 not found: a gap where its body should be", [1, 2, 3, -1, 5, 6, 7], [1, 2, 3, -1, 5, 6, 7]),
    ("L2 not found, L3 votes L2", [1, 2, 3, -1, 5, 6, 7], [1, 2, 3, -1, 4, 6, 7]),
])
def test_levels_run_without_gap_from_the_whole_sequence(case, levels, votes):
    from saunet.postprocessing import assign_levels

    truth, probabilities = column(levels, votes)
    decoded = LabelMap((1, 2, 3, 4, 5, 6, 7)).decode(probabilities)
    assigned = assign_levels(decoded, probabilities, (1.0, 1.0, 1.0), 1.0, superior=(0, -1))
    assert np.array_equal(assigned, truth), case


def test_levels_follow_the_superior_direction():
    from saunet.postprocessing import assign_levels

    truth, probabilities = column([3, 4, 5], [3, 4, 5])
    flipped = assign_levels(truth[::-1] > 0, probabilities[:, ::-1], (1.0, 1.0, 1.0), 1.0, superior=(0, 1))
    assert np.array_equal(flipped, truth[::-1])


def test_a_merged_column_is_split_into_its_levels():
    """Bodies that touch through their discs form one foreground component; its large regions of different
    levels are bodies of their own, a small piece with the neighbour's level is dropped."""
    from saunet.postprocessing import assign_levels

    truth, probabilities = column([3, 4, 5], [3, 4, 5], gap=0)
    decoded = LabelMap((1, 2, 3, 4, 5, 6, 7)).decode(probabilities)
    decoded[6, 1, 0] = 5  # one voxel of L2 voting L3: a fragment
    assigned = assign_levels(decoded, probabilities, (1.0, 1.0, 1.0), 1.0, superior=(0, -1))
    expected = truth.copy()
    expected[6, 1, 0] = 0
    assert np.array_equal(assigned, expected)


def test_fragments_join_the_body_at_their_height():
    """A lateral piece of L2 voting L1, and a sacrum in two small pieces voting L5: counted as bodies of their
    own they would take ranks in the run and shift names; the piece joins L2, the sacrum stays background."""
    from saunet.postprocessing import assign_levels

    truth, probabilities = column([1, 2, 3, 4, 5, 6, 7, 0], [1, 2, 3, 4, 5, 6, 7, 7])
    truth, probabilities = np.pad(truth, ((0, 0), (0, 4), (0, 0))), np.pad(probabilities, ((0, 0), (0, 0), (0, 4), (0, 0)))
    l2_rows = np.flatnonzero((truth == 2).any((1, 2)))
    piece = (slice(l2_rows[1], l2_rows[3]), slice(9, 11), 1)
    truth[piece] = 2
    probabilities[(0, *piece)] = 0.7
    sacrum_rows = np.flatnonzero((truth[:, 1:7] == 0).all((1, 2)) & (probabilities[6].max((1, 2)) > 0))
    probabilities[:, sacrum_rows, 1:7] = 0  # the sacrum as two small pieces instead of a body
    for columns in (slice(1, 3), slice(4, 6)):
        probabilities[6, sacrum_rows[1:4], columns, 0] = 0.8
    decoded = LabelMap((1, 2, 3, 4, 5, 6, 7)).decode(probabilities)
    assigned = assign_levels(decoded, probabilities, (1.0, 1.0, 1.0), 1.0, superior=(0, -1))
    assert np.array_equal(assigned, truth)


def test_pieces_of_one_body_side_by_side_share_its_level():
    """L2 split left-right into two pieces, one voting L2 and one L3, each too large to be a fragment: as two
    bodies they would take two ranks and push L5 off the run; at one height they are one body, named L2."""
    from saunet.postprocessing import assign_levels

    truth, probabilities = column([3, 4, 5, 6, 7], [3, 4, 5, 6, 7])
    l2_rows = np.flatnonzero((truth == 4).any((1, 2)))
    truth[l2_rows, 4] = 0  # the gap between the pieces
    probabilities[:, l2_rows, 4] = 0
    probabilities[3, l2_rows[:, None], 5:7] = 0.05
    probabilities[4, l2_rows[:, None], 5:7] = 0.65
    decoded = LabelMap((1, 2, 3, 4, 5, 6, 7)).decode(probabilities)
    assert (decoded[l2_rows][:, 5:7] == 5).all() and (decoded[l2_rows][:, 1:4] == 4).all()
    assigned = assign_levels(decoded, probabilities, (1.0, 1.0, 1.0), 1.0, superior=(0, -1))
    assert np.array_equal(assigned, truth)


def test_pieces_share_a_rank_only_within_half_a_body_of_the_first_piece():
    """A large piece over the disc between two bodies, each step under half a body: the bridge joins the body above,
    the body below keeps a rank of its own (chained step by step, all three would be one body and one name)."""
    from saunet.postprocessing import level_steps

    assert level_steps(np.array([100.0, 88.0, 76.0, 46.0, 16.0]), body_extent=25.0).tolist() == [0, 0, 1, 2, 3]
    assert level_steps(np.array([100.0, 99.0, 70.0, 40.0]), body_extent=25.0).tolist() == [0, 0, 1, 2]
    assert level_steps(np.array([100.0, 70.0, 40.0, -20.0]), body_extent=25.0).tolist() == [0, 1, 2, 4]  # one not found
