import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from saunet.checkpoints import Checkpoint
from saunet.config import RecipeError
from saunet.datasets import list_cases
from saunet.training import TrainConfig, augment, sample_batch, segmentation_loss, train, training_batches

TRAIN = ["train", "--model", "sau-net", "--width", "4,8,16", "--patch", "32", "--steps-per-epoch", "4",
         "--lr", "0.01", "--loss", "dice-bce"]


def saunet(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "saunet.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def test_sampled_stacks_hold_consecutive_slices():
    from saunet.training import PreparedCase

    slice_index = np.broadcast_to(np.arange(9, dtype=np.float32)[:, None, None], (9, 40, 40)).copy()
    case = PreparedCase("c", slice_index, (slice_index > 3).astype(np.uint8))
    config = TrainConfig(stack=3, patch=32, batch_size=6)
    images, labels, known = sample_batch([case], config, np.random.default_rng(0))
    assert known.dtype == torch.bool and bool(known.all())
    assert images.shape == (6, 1, 3, 32, 32) and labels.shape == (6, 1, 3, 32, 32)
    for stack, label in zip(images[:, 0].numpy(), labels[:, 0].numpy()):
        first = stack[0, 0, 0]
        assert np.array_equal(stack[:, 0, 0], first + np.arange(3))  # consecutive slices
        assert np.array_equal(label[:, 0, 0], (stack[:, 0, 0] > 3).astype(np.uint8))  # labels follow
    aug_images, aug_labels = augment(images, labels, np.random.default_rng(1))
    assert aug_images.shape == images.shape and set(np.unique(aug_labels.numpy())) <= {0, 1}


def noise_case():
    from saunet.training import PreparedCase

    image = np.random.default_rng(0).random((9, 40, 40), dtype=np.float32)
    return PreparedCase("c", image, (image > 0.5).astype(np.uint8))


def test_batches_drawn_in_the_training_process_are_sample_batch_draws_from_its_generator():
    config = TrainConfig(stack=3, patch=32, batch_size=2)
    drawn, rng = training_batches([noise_case()], config, np.random.default_rng(5), [0, 0, 0]), np.random.default_rng(5)
    for _ in range(3):
        assert all(torch.equal(a, b) for a, b in zip(next(drawn), sample_batch([noise_case()], config, rng)))


def test_loader_workers_draw_reproducible_batches_each_from_its_own_generator():
    config = TrainConfig(stack=3, patch=32, batch_size=2, loader_workers=2)
    first, second = ([next(batches) for _ in range(4)]
                     for batches in (training_batches([noise_case()], config, None, [0, 3, 0]) for _ in range(2)))
    assert all(torch.equal(a, b) for one, two in zip(first, second) for a, b in zip(one, two))
    own = sample_batch([noise_case()], config, np.random.default_rng([0, 3, 0, 0]))  # worker 0's first batch
    assert all(torch.equal(a, b) for a, b in zip(first[0], own))
    assert not torch.equal(first[0][0], first[1][0])  # worker 1 draws other stacks
    assert [t.shape for t in first[1]] == [t.shape for t in own]


def test_losses_fall_for_a_perfect_prediction():
    target = torch.zeros(1, 1, 2, 8, 8)
    target[..., 2:6, 2:6] = 1
    good = (target * 2 - 1) * 10
    for kind in ("bce", "dice-bce"):
        assert segmentation_loss(good, target, kind) < 0.01 < segmentation_loss(-good, target, kind)


def test_multi_class_targets_give_the_class_index_cross_entropy():
    index = torch.randint(0, 3, (2, 3, 5, 5))
    target = torch.stack([index == 1, index == 2], 1).float()  # classes 1..K; background is what is left
    logits = torch.randn(2, 3, 3, 5, 5)
    expected = torch.nn.functional.cross_entropy(logits, index)
    assert segmentation_loss(logits, target, "bce").item() == pytest.approx(expected.item(), rel=1e-6)


def test_soft_targets_keep_what_nearest_labels_lose(lumbar):
    """Area fractions of a real mask on the 1.875 mm grid give the mask back; a nearest-neighbour label does not."""
    from saunet.evaluation import overlap_metrics
    from saunet.imageio import read_volume
    from saunet.orientation import volume_layout
    from saunet.preprocessing import PreprocessingSettings, Preprocessor
    from saunet.training import class_fractions

    label = read_volume(lumbar / "labelsTr" / "lumbar_02.nii.gz")
    mask = (label.array > 0).astype(np.uint8)
    pre = Preprocessor(PreprocessingSettings(in_plane_spacing=1.875))
    grid = pre.grid(mask.shape, label.spacing, volume_layout(label))
    fractions = class_fractions(mask, 1, grid, pre)
    assert fractions.shape == (1, *grid.network_shape) and 0 <= fractions.min() and fractions.max() <= 1
    assert 0 < ((fractions > 0) & (fractions < 1)).mean()
    soft_back = pre.inverse(fractions, grid)[0] > 0.5
    nearest_back = pre.inverse(pre.label(mask, grid)[None].astype(np.float32), grid)[0] > 0.5
    soft_dice = overlap_metrics(soft_back, mask > 0)["dice"]
    nearest_dice = overlap_metrics(nearest_back, mask > 0)["dice"]
    print(f"round trip through the network grid, Dice: fractions {soft_dice:.4f}, nearest {nearest_dice:.4f}")
    assert soft_dice > 0.99 > 0.97 > nearest_dice


def test_soft_labels_sample_and_augment_fractions():
    from saunet.training import PreparedCase

    image = np.random.default_rng(0).normal(size=(5, 40, 40)).astype(np.float32)
    fractions = np.clip(np.random.default_rng(1).normal(0.5, 0.3, size=(1, 5, 40, 40)), 0, 1).astype(np.float32)
    case = PreparedCase("c", image, (fractions[0] > 0.5).astype(np.uint8), fractions=fractions)
    config = TrainConfig(stack=5, patch=40, batch_size=2, soft_labels=True)
    images, targets, _ = sample_batch([case], config, np.random.default_rng(0))
    assert torch.equal(targets[0], torch.from_numpy(fractions))  # whole case: the crop is everything
    _, augmented = augment(images, targets, np.random.default_rng(1), soft=True)
    assert augmented.shape == targets.shape and 0 <= augmented.min() and augmented.max() <= 1
    assert len(torch.unique(augmented)) > 100  # resampled bilinearly, not to the nearest value


@pytest.mark.parametrize("classes", [None, (1, 2)])
def test_soft_labels_train_and_are_recorded(phantom_data, tmp_path, classes):
    cases = list_cases(phantom_data)
    config = TrainConfig(model_kwargs={"features": [4, 8, 16], "growth": 4}, epochs=1, steps_per_epoch=2, patch=32,
                         loss="dice-bce", soft_labels=True, classes=classes)
    summary = train(config, cases[:2], cases[2:3], tmp_path, progress=False)
    assert np.isfinite(summary["history"][0]["train_loss"])
    assert Checkpoint.load(tmp_path / "checkpoint_last.pt").config["soft_labels"] is True


def test_fine_logits_resample_as_inference_does():
    """Training's fine logits are the network grid's logits resampled as saunet.preprocessing sends them to a
    scan's grid (bilinear, pixel centres aligned): the loss scores the boundaries inference will draw."""
    from saunet.preprocessing import apply_weights, linear_weights
    from saunet.training import fine_logits

    logits = torch.randn(2, 3, 4, 9, 7)
    fine = fine_logits(logits, 2).numpy()
    expected = apply_weights(logits.numpy(), linear_weights(9, 18), linear_weights(7, 14))
    assert fine.shape == (2, 3, 4, 18, 14) and np.allclose(fine, expected, atol=1e-5)


def disc(size: int, radius: float, centre: tuple[float, float]) -> np.ndarray:
    y, x = np.mgrid[:size, :size] + 0.5
    return ((y - centre[0]) ** 2 + (x - centre[1]) ** 2 < radius**2).astype(np.uint8)


def test_a_fine_target_loss_teaches_logits_a_boundary_between_network_pixels():
    """Logits fitted on the network grid to a nearest-neighbour label put a disc's edge on the nearest network pixel's;
    fitted through fine_logits to a label twice as fine, the same number of logits draws it closer to the truth."""
    from saunet.training import fine_logits

    truth = disc(96, 17.3, (47.1, 48.7))  # the mask on a grid 4x finer than the network's
    network, fine = truth[2::4, 2::4], truth.reshape(48, 2, 48, 2)[:, 0, :, 0]  # nearest labels on 24 and 48 pixels

    def fitted(zoom: int, target: np.ndarray) -> torch.Tensor:
        logits = torch.zeros(1, 2, 1, 24, 24, requires_grad=True)
        optimiser = torch.optim.Adam([logits], lr=0.1)
        goal = torch.from_numpy(target).float()[None, None, None]
        for _ in range(300):
            optimiser.zero_grad()
            segmentation_loss(fine_logits(logits, zoom) if zoom > 1 else logits, goal, "bce").backward()
            optimiser.step()
        return logits.detach()

    def dice_on_the_fine_grid(logits: torch.Tensor) -> float:
        drawn = fine_logits(logits, 4)[0, :, 0].argmax(0).numpy() > 0
        return 2 * (drawn & (truth > 0)).sum() / (drawn.sum() + truth.sum())

    nearest, through_fine = dice_on_the_fine_grid(fitted(1, network)), dice_on_the_fine_grid(fitted(2, fine))
    print(f"disc drawn from the logits, Dice: nearest labels {nearest:.4f}, fine targets {through_fine:.4f}")
    assert through_fine > nearest + 0.01


def test_fine_targets_are_the_crops_fine_labels_and_move_with_the_stack():
    from saunet.training import PreparedCase

    slice_index = np.broadcast_to(np.arange(9, dtype=np.float32)[:, None, None], (9, 30, 30)).copy()
    fine_label = np.zeros((9, 60, 60), np.uint8)
    fine_label[:, 20:44, 10:36] = 1  # whole network pixels: the stack's image is the same rectangle
    unannotated = np.zeros((9, 30, 30), bool)
    unannotated[:, :5] = True
    case = PreparedCase("c", slice_index, fine_label[:, ::2, ::2].copy(), known=np.array([False]), unannotated=unannotated,
                        fine_label=fine_label)
    config = TrainConfig(stack=3, patch=40, batch_size=3, target_zoom=2)  # the case is smaller than the patch: padded
    images, targets, known = sample_batch([case], config, np.random.default_rng(0))
    assert images.shape == (3, 1, 3, 40, 40) and targets.shape == known.shape == (3, 1, 3, 80, 80)
    assert torch.equal(targets[:, 0, :, :60, :60], torch.from_numpy(fine_label[:3]).float().expand(3, 3, 60, 60))
    assert not targets[..., 60:, :].any() and not targets[..., 60:].any()
    assert not known[:, 0, :, :10, :60].any() and known[:, 0, :, 10:].all()  # a network pixel's known, 2 x 2 fine
    image = torch.zeros(3, 1, 3, 40, 40)
    image[:, :, :, :30, :30] = torch.from_numpy(fine_label[:3, ::2, ::2].astype(np.float32))
    moved_image, moved = augment(image, targets.clone(), np.random.default_rng(4))
    assert not torch.equal(moved, targets)
    drawn = torch.nn.functional.interpolate(moved_image, scale_factor=(1, 2, 2), mode="trilinear") > 0.5
    overlap = (drawn & moved.bool()).sum() * 2 / (drawn.sum() + moved.sum())
    assert overlap > 0.97  # rotated, scaled and mirrored alike


def test_fine_targets_train_and_are_recorded(phantom_data, tmp_path):
    cases = list_cases(phantom_data)
    config = TrainConfig(model_kwargs={"features": [4, 8, 16], "growth": 4}, epochs=1, steps_per_epoch=2, patch=32,
                         loss="batch-dice-bce", target_zoom=2, classes=(1, 2))
    summary = train(config, cases[:2], cases[2:3], tmp_path, progress=False)
    assert np.isfinite(summary["history"][0]["train_loss"])
    assert Checkpoint.load(tmp_path / "checkpoint_last.pt").config["target_zoom"] == 2


def trained_weights(config, cases, out):
    train(config, cases[:4], cases[4:5], out, progress=False)
    return Checkpoint.load(out / "checkpoint_last.pt").state_dict


@pytest.mark.parametrize("loader_workers", [0, 2])
def test_same_seed_same_run(phantom_data, tmp_path, loader_workers):
    cases = list_cases(phantom_data)
    config = TrainConfig(model_kwargs={"features": [4, 8, 16], "growth": 4}, epochs=1, steps_per_epoch=2, patch=32,
                         loader_workers=loader_workers)
    a, b = (trained_weights(config, cases, tmp_path / run) for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_cpu_run_records_its_thread_count_which_its_numbers_depend_on(phantom_data, tmp_path):
    cases = list_cases(phantom_data)
    config = TrainConfig(model_kwargs={"features": [4, 8, 16], "growth": 4}, epochs=1, steps_per_epoch=1, patch=32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train(config, cases[:4], [], tmp_path / "run", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert Checkpoint.load(tmp_path / "run" / "checkpoint_last.pt").trained_on == "cpu (threads: 1)"


def test_appearance_augmentation_changes_the_run_and_repeats_with_the_seed(phantom_data, tmp_path):
    cases = list_cases(phantom_data)
    plain = TrainConfig(model_kwargs={"features": [4, 8, 16], "growth": 4}, epochs=1, steps_per_epoch=3, patch=32)
    varied = replace(plain, appearance=True)
    a, b, c = (trained_weights(config, cases, tmp_path / run) for config, run in ((varied, "a"), (varied, "b"), (plain, "c")))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_appearance_is_one_change_per_stack_drawn_from_the_generator():
    from monai.transforms import Compose

    from saunet.training import appearance_transforms, vary_appearance

    slice_ = torch.from_numpy(np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32))
    stacks = slice_.expand(16, 1, 3, 32, 32).clone()
    noiseless = Compose(appearance_transforms().transforms[1:])  # noise alone differs from slice to slice
    varied = vary_appearance(stacks, np.random.default_rng(1), noiseless)
    assert varied.shape == stacks.shape and varied.dtype == stacks.dtype
    assert torch.equal(varied[:, :, 0], varied[:, :, 1]) and torch.equal(varied[:, :, 0], varied[:, :, 2])
    changed = (varied - stacks).abs().amax(dim=(1, 2, 3, 4)) > 1e-3
    assert 0 < int(changed.sum()) < 16  # each transform fires with its own probability
    again = vary_appearance(stacks, np.random.default_rng(1), noiseless)
    assert torch.equal(varied, again)
    assert not torch.equal(varied, vary_appearance(stacks, np.random.default_rng(2), noiseless))


def test_contrast_curves_reorder_brightness_in_their_share_of_stacks_keeping_mean_and_spread():
    from saunet.training import remap_contrast

    ramp = torch.linspace(-2.0, 2.0, 64).expand(40, 1, 3, 64, 64).clone()  # brightness rising along each row
    rng = np.random.default_rng(0)
    curved = remap_contrast(ramp, rng, share=0.5)
    changed = (curved - ramp).abs().amax(dim=(1, 2, 3, 4)) > 1e-3
    assert 8 < int(changed.sum()) < 32  # about half the stacks
    assert torch.allclose(curved.mean(dim=(1, 2, 3, 4)), ramp.mean(dim=(1, 2, 3, 4)), atol=1e-4)
    assert torch.allclose(curved.std(dim=(1, 2, 3, 4)), ramp.std(dim=(1, 2, 3, 4)), atol=1e-3)
    falls = (curved[changed][..., 1:] - curved[changed][..., :-1] < -1e-4).flatten(1).any(1)
    assert falls.float().mean() > 0.9  # almost no curve keeps the order of brightness, as any gamma would
    assert torch.equal(remap_contrast(ramp, rng, share=0.0), ramp)


def test_a_share_of_contrast_curves_outside_0_to_1_is_refused():
    with pytest.raises(RecipeError, match="contrast_curves"):
        TrainConfig(contrast_curves=1.5)


def test_kill_9_then_resume_loses_at_most_one_epoch(phantom_data, tmp_path):
    run = tmp_path / "run"
    process = saunet(*TRAIN, "--data", phantom_data, "--out", run, "--epochs", 8)
    last = run / "checkpoint_last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if last.exists() and Checkpoint.load(last).epoch >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = Checkpoint.load(last).epoch  # a checkpoint written atomically is always readable
    assert 2 <= killed_at < 8

    resumed = saunet(*TRAIN, "--data", phantom_data, "--out", run, "--epochs", 8, "--resume")
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    final = Checkpoint.load(last)
    assert final.epoch == 8
    assert [h["epoch"] for h in final.history] == list(range(1, 9))
    assert f"epoch {killed_at + 1}/8" in output and f"epoch {killed_at}/8" not in output

    # Epochs draw from per-epoch seeds, so the interrupted run ends where an uninterrupted one does.
    straight = saunet(*TRAIN, "--data", phantom_data, "--out", tmp_path / "straight", "--epochs", 8)
    straight.communicate(timeout=600)
    reference = Checkpoint.load(tmp_path / "straight" / "checkpoint_last.pt").state_dict
    assert all(torch.allclose(final.state_dict[k].float(), reference[k].float(), atol=1e-5) for k in reference)


def test_two_gloo_processes_hold_identical_weights(phantom_data, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAUNET_WEIGHT_FINGERPRINT": "1"}
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "saunet.cli",
         *TRAIN, "--data", phantom_data, "--out", run, "--epochs", "2"],
        capture_output=True, text=True, env=env, timeout=600)
    assert process.returncode == 0, process.stdout + process.stderr
    ranks = [(run / f"rank{r}_weights.txt").read_text(encoding="utf-8") for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert Checkpoint.load(run / "checkpoint_last.pt").epoch == 2


def test_checkpoint_holds_what_inference_needs(tiny_checkpoint, phantom_data):
    from saunet.imageio import read_volume
    from saunet.postprocessing import label_components

    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    for key in ("model", "model_kwargs", "preprocessing", "label_map", "postprocessing", "state_dict"):
        assert key in checkpoint
    assert checkpoint["model"] == "sau-net"
    # post-processing keeps as many components as the training masks have (bodies of the phantom column)
    bodies = label_components(read_volume(sorted((phantom_data / "labelsTr").iterdir())[0]).array > 0).max()
    assert bodies > 1 and checkpoint["postprocessing"] == {"max_components": bodies}


@pytest.mark.parametrize("model", ["dense-unet", "unet2d", "unet3d"])
def test_every_model_trains_one_step(phantom_data, tmp_path, model):
    cases = list_cases(phantom_data)
    small = {"unet2d": {"features": [4, 4, 8, 8, 16, 4]}, "unet3d": {"features": [2, 2, 4, 4, 8, 2]}}
    config = TrainConfig(model=model, model_kwargs=small.get(model, {"features": [4, 8, 16], "growth": 4}),
                         epochs=1, steps_per_epoch=1, patch=32, batch_size=1)
    train(config, cases[:2], cases[2:3], tmp_path, progress=False)
    assert Checkpoint.load(tmp_path / "checkpoint_best.pt").model == model


@pytest.mark.parametrize("model", ["sau-net", "dense-unet", "unet2d"])
def test_channels_last_training_form_gives_the_same_loss_and_gradients(model):
    """The faster training path (channels-last) computes what the plain one does, on a fixed batch."""
    from saunet.models import create
    from saunet.training import training_form

    small = {"unet2d": {"features": [4, 4, 8, 8, 16, 4]}}.get(model, {"features": [4, 8, 16], "growth": 4})
    torch.manual_seed(0)
    plain = create(model, **small).train()
    fast = training_form(create(model, **small).train())
    fast.load_state_dict(plain.state_dict())
    kernels = [p for p in fast.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in kernels)
    images = torch.randn(4, 1, 3, 32, 32)
    targets = (torch.rand(4, 1, 3, 32, 32) > 0.6).float()
    losses = [segmentation_loss(net(images), targets, "dice-bce") for net in (plain, fast)]
    for loss in losses:
        loss.backward()
    assert torch.allclose(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-3, atol=1e-5), name


def test_marginal_loss_is_the_plain_loss_when_every_class_is_annotated():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, 5)
    target = torch.nn.functional.one_hot(torch.randint(0, 4, (2, 3, 5, 5)), 4).permute(0, 4, 1, 2, 3)[:, 1:].float()
    known = torch.ones(2, 3, dtype=torch.bool)
    from saunet.training import marginal_cross_entropy

    plain = segmentation_loss(logits, target, "dice-bce")
    assert segmentation_loss(logits, target, "dice-bce", known).item() == pytest.approx(plain.item(), rel=1e-6)
    assert marginal_cross_entropy(logits, target, known).item() == pytest.approx(
        segmentation_loss(logits, target, "bce").item(), rel=1e-5)


def test_unannotated_class_is_not_taught_as_background():
    """A voxel left 0 by a data set that does not annotate class 2 may be class 2: moving its probability
    between background and class 2 leaves the loss unchanged, where a fully annotated set penalises it."""
    torch.manual_seed(1)
    logits = torch.randn(1, 4, 1, 6, 6)
    target = torch.zeros(1, 3, 1, 6, 6)
    target[:, 0, :, :3] = 1  # class 1 labelled on half the slice, the rest left 0
    swapped = logits.clone()
    swapped[:, [0, 2]] = logits[:, [2, 0]]  # background <-> class 2
    partial = torch.tensor([[True, False, True]])
    full = torch.ones(1, 3, dtype=torch.bool)
    loss = lambda x, known: segmentation_loss(x, target, "dice-bce", known).item()  # noqa: E731
    assert loss(logits, partial) == pytest.approx(loss(swapped, partial), rel=1e-6)
    assert loss(logits, full) != pytest.approx(loss(swapped, full), rel=1e-3)


def test_two_data_sets_with_partial_labels_train(tmp_path):
    """A set annotating levels 1-3 and one annotating 2-3 (its level-1 bodies left 0) train one level model;
    each set is drawn, and each case knows what its set annotates."""
    import json

    from saunet.datasets import list_cases
    from saunet.experiments.phantoms import write_cohort
    from saunet.imageio import read_volume, write_like
    from saunet.training import draw_case, prepare_cases

    full, partial = tmp_path / "full", tmp_path / "partial"
    write_cohort(full, 2, seed=0, shape=(5, 40, 40), vertebrae=3)
    write_cohort(partial, 2, seed=5, shape=(5, 40, 40), vertebrae=3)
    for label_path in (partial / "labelsTr").iterdir():
        label = read_volume(label_path)
        write_like(np.where(label.array == 1, 0, label.array).astype(np.uint8), label, label_path)
    meta = json.loads((partial / "dataset.json").read_text())
    (partial / "dataset.json").write_text(json.dumps({**meta, "annotated_labels": [2, 3]}))
    cases = list_cases(full) + list_cases(partial)
    config = TrainConfig(model_kwargs={"features": [4, 8, 16], "growth": 4}, epochs=1, steps_per_epoch=2, patch=32,
                         batch_size=2, classes=(1, 2, 3), loss="dice-bce")
    prepared = prepare_cases(cases, config, progress=False)
    assert [c.known.tolist() for c in prepared] == [[True] * 3] * 2 + [[False, True, True]] * 2
    regions = [c.unannotated for c in prepared]
    assert regions[0] is None and regions[1] is None and all(0 < r.mean() < 1 for r in regions[2:])
    anywhere = prepare_cases(cases, replace(config, unannotated_anywhere=True), progress=False)
    assert all(c.unannotated is None for c in anywhere)  # the earlier recipe: unannotated throughout the scan
    drawn = {draw_case(prepared, np.random.default_rng(s)).dataset for s in range(20)}
    assert drawn == {"full", "partial"}
    train(config, cases[:1] + cases[2:], cases[1:2], tmp_path / "run", progress=False)
    checkpoint = Checkpoint.load(tmp_path / "run" / "checkpoint_last.pt")
    assert checkpoint.label_map.classes == (1, 2, 3) and checkpoint.epoch == 1


def test_batch_dice_does_not_punish_a_class_for_missing_from_one_stack():
    from saunet.training import soft_dice

    target = torch.zeros(2, 1, 1, 10, 10)
    target[0, 0, 0, :5, :] = 1  # the class fills half of stack 0 and is absent from stack 1
    probs = target.clone()
    probs[1, 0, 0, 0, :2] = 0.5  # a little probability where it is absent
    per_stack, over_batch = (soft_dice(probs, target, None, batch).item() for batch in (False, True))
    assert per_stack == pytest.approx((1 + 1 / 2) / 2)
    assert over_batch > 0.98
    known = torch.tensor([[True], [False]])  # stack 1's data set does not annotate the class: not counted
    assert soft_dice(probs, target, known, False).item() == pytest.approx(1.0)
    assert soft_dice(probs, target, known, True).item() == pytest.approx(1.0)
    assert segmentation_loss(torch.randn(2, 2, 1, 10, 10), target, "batch-dice-bce", known).item() > 0


def test_thick_slice_stacks_average_runs_of_stored_slices():
    """With every stack drawn thick, each sampled slice is the mean of k consecutive stored slices (3-5 mm of
    1 mm slices), its target that of the run's middle slice; by default the stored slices are sampled as they are."""
    from saunet.training import PreparedCase

    slice_index = np.broadcast_to(np.arange(30, dtype=np.float32)[:, None, None], (30, 24, 24)).copy()
    case = PreparedCase("c", slice_index, (slice_index % 2).astype(np.uint8), slice_mm=1.0)
    thick = TrainConfig(stack=3, patch=24, batch_size=8, thick_slices=1.0)
    images, targets, _ = sample_batch([case], thick, np.random.default_rng(0))
    steps = set()
    for stack, target in zip(images[:, 0, :, 0, 0].numpy(), targets[:, 0, :, 0, 0].numpy()):
        step = stack[1] - stack[0]
        steps.add(step)
        assert 3 <= step <= 5 and np.allclose(np.diff(stack), step)  # runs of k slices, one after the other
        first = stack[0] - (step - 1) / 2  # the mean of slices first .. first + k - 1
        middles = first + step // 2 + step * np.arange(3)
        assert np.array_equal(target, middles % 2)
    assert len(steps) > 1
    plain, _, _ = sample_batch([case], TrainConfig(stack=3, patch=24, batch_size=8), np.random.default_rng(0))
    assert np.allclose(np.diff(plain[:, 0, :, 0, 0].numpy(), axis=1), 1)


def test_field_edge_stacks_begin_within_the_bodies_and_show_nothing_caudal_of_the_cut():
    """With every stack cut (``field_edges`` 1), each crop's first row (its caudal edge: canonical rows grow towards
    superior) lies within the bodies' cranio-caudal extent, and a crop running past the scan's cranial end is padded
    there; by default crops lie inside the scan wherever it is larger than the crop."""
    from saunet.training import PreparedCase

    row = np.broadcast_to(np.arange(80, dtype=np.float32)[None, :, None], (6, 80, 30)).copy()
    label = ((row >= 20) & (row < 60)).astype(np.uint8)  # the bodies span rows 20-59
    case = PreparedCase("c", row, label)
    cut = TrainConfig(stack=3, patch=32, batch_size=16, field_edges=1.0)
    images, targets, known = sample_batch([case], cut, np.random.default_rng(0))
    first_rows = images[:, 0, 0, 0, 0].numpy()
    assert ((first_rows >= 20) & (first_rows < 60)).all() and len(set(first_rows)) > 4
    for stack, target, first in zip(images[:, 0, 0, :, 0].numpy(), targets[:, 0, 0, :, 0].numpy(), first_rows):
        inside = min(32, 80 - int(first))
        assert np.array_equal(stack[:inside], first + np.arange(inside))  # the scan's rows from the cut up
        assert (stack[inside:] == row.min()).all() and not target[inside:].any()  # padded past the cranial end
    assert bool(known.all())
    plain, _, _ = sample_batch([case], TrainConfig(stack=3, patch=32, batch_size=16), np.random.default_rng(0))
    assert (plain[:, 0, 0, 0, 0].numpy() <= 80 - 32).all()


def test_cranial_field_edge_stacks_end_within_the_bodies_and_both_ends_cut_at_even_odds():
    """A cranial cut ends each crop (its last row before the padding) within the bodies' extent, showing the scan's
    rows below it; "both" cuts each end in some stacks; "caudal" crops begin within the bodies."""
    from saunet.training import PreparedCase

    row = np.broadcast_to(np.arange(80, dtype=np.float32)[None, :, None], (6, 80, 30)).copy()
    label = ((row >= 20) & (row < 60)).astype(np.uint8)  # the bodies span rows 20-59
    row[0, 0, -1] = -1  # the padding value, a pixel the stacks' first column never shows
    case = PreparedCase("c", row, label)

    def stacks(ends):
        config = TrainConfig(stack=3, patch=32, batch_size=16, field_edges=1.0, field_edge_ends=ends)
        return sample_batch([case], config, np.random.default_rng(0))

    images, targets, known = stacks("cranial")
    for stack, target in zip(images[:, 0, 0, :, 0].numpy(), targets[:, 0, 0, :, 0].numpy()):
        inside = np.flatnonzero(stack != row.min())
        last = stack[inside[-1]]
        assert 20 <= last < 60  # the cut: the last row in view lies within the bodies
        assert np.array_equal(stack[inside], np.arange(last - len(inside) + 1, last + 1))  # the rows below the cut
        assert (stack[inside[-1] + 1:] == row.min()).all() and not target[inside[-1] + 1:].any()
        assert target[inside].any()
    assert bool(known.all())
    both = stacks("both")[0][:, 0, 0, :, 0].numpy()
    last_in_view = np.where(both != row.min(), both, -np.inf).max(1)
    # Only a cranial cut shows rows caudal of the bodies, only a caudal one rows cranial of them.
    assert (both[:, 0] < 20).any() and (last_in_view >= 60).any()
    caudal = stacks("caudal")[0][:, 0, 0, 0, 0].numpy()
    assert ((caudal >= 20) & (caudal < 60)).all()
    with pytest.raises(RecipeError, match="field_edge_ends"):
        TrainConfig(field_edges=0.3, field_edge_ends="top")


def levels_phantom(known: np.ndarray):
    """A canonical (slices, towards superior, towards posterior) label of five bodies, levels 3-7 from the top,
    each 10 pixels high, on a 2 mm grid: a water-fat scan's L1-L5 with T11 and T12 above unannotated."""
    from saunet.training import PreparedCase

    label = np.zeros((12, 120, 60), np.uint8)
    for i, level in enumerate(range(3, 8)):
        top = 100 - 14 * i
        label[3:9, top - 10:top, 20:35] = level
    image = label.astype(np.float32)
    return PreparedCase("c", image, label, known=known, slice_mm=2.0)


def test_unannotated_levels_may_lie_only_beside_the_annotated_bodies():
    from saunet.training import unannotated_region

    case = levels_phantom(np.array([False, False, True, True, True, True, True]))
    region = unannotated_region(case.label, case.known, 2.0, 2.0)
    rows = np.flatnonzero(region.any((0, 2)))
    assert 90 <= rows.min() < 100 and rows.max() == 119  # from L1's top part up (two levels reach past the top)
    assert not region[:, :, :5].any() and not region[:, :, 50:].any()  # beyond the bodies' front and back
    assert region[5, 110, 27]  # right above L1
    assert unannotated_region(case.label, np.ones(7, bool), 2.0, 2.0) is None
    below = unannotated_region(case.label, np.array([True] * 6 + [False]), 2.0, 2.0)  # the last level unannotated
    assert np.flatnonzero(below.any((0, 2))).max() < 50  # near the bottom body (rows 34-44)


def test_partial_labels_teach_background_away_from_the_annotated_bodies():
    """T11 predicted far from a water-fat scan's bodies costs loss; predicted where its T11 may lie, it costs
    nothing (the merged class "background or T11 or T12" only grows more probable)."""
    from saunet.training import unannotated_region

    case = levels_phantom(np.array([False, False, True, True, True, True, True]))
    case.unannotated = unannotated_region(case.label, case.known, 2.0, 2.0)
    config = TrainConfig(stack=3, patch=120, batch_size=1, classes=(1, 2, 3, 4, 5, 6, 7))
    _, targets, known = sample_batch([case], config, np.random.default_rng(0))
    assert known.shape == targets.shape and known[0, 2:].all() and not known[0, 0].all() and known[0, 0].any()
    background = torch.full((1, 8, *targets.shape[2:]), -5.0)
    background[:, 0] = 5.0
    background[:, 1:][targets.bool()] = 10.0  # the labelled bodies right
    t11_where_possible, t11_everywhere = background.clone(), background.clone()
    unlabelled = targets.sum(1) == 0
    t11_where_possible[:, 1][unlabelled & ~known[:, 0]] = 10.0
    t11_everywhere[:, 1][unlabelled] = 10.0
    loss = lambda logits: segmentation_loss(logits, targets, "batch-dice-bce", known).item()  # noqa: E731
    assert loss(t11_where_possible) <= loss(background)
    assert loss(t11_everywhere) > loss(background) + 1


def test_the_known_map_moves_with_the_targets_under_augmentation():
    """Where a level may be unannotated is rotated, scaled and mirrored with the stack; what the resampling
    brings in from outside the stack is known (background)."""
    rng = np.random.default_rng(3)
    targets = torch.zeros(6, 2, 3, 40, 40)
    targets[:, 1, :, 5:20, 8:30] = 1
    targets[:, 1, 0, 20:25, 8:12] = 1  # not symmetric across slices: a mirror shows
    known = torch.ones_like(targets, dtype=torch.bool)
    known[:, 0] = targets[:, 1] == 0  # class 1 unannotated exactly where class 2 is drawn
    images = torch.randn(6, 1, 3, 40, 40)
    _, moved, moved_known = augment(images, targets, rng, known=known)
    assert torch.equal(~moved_known[:, 0], moved[:, 1].bool())
    assert moved_known[:, 1].all()
    assert (moved[:, 1] != targets[:, 1]).any()  # the augmentation did move the targets


def test_stacks_outside_the_spatial_share_keep_their_labels_unresampled():
    images = torch.from_numpy(np.random.default_rng(0).random((6, 1, 3, 32, 32), dtype=np.float32))
    targets = (images > 0.5).float().repeat(1, 2, 1, 1, 1)

    def unmoved(moved):  # as drawn, or mirrored (the slice order reversed)
        return [torch.equal(m, t) or torch.equal(m, t.flip(1)) for m, t in zip(moved, targets)]

    assert all(unmoved(augment(images.clone(), targets.clone(), np.random.default_rng(1), spatial_share=0.0)[1]))
    assert not any(unmoved(augment(images.clone(), targets.clone(), np.random.default_rng(1))[1]))
    some = unmoved(augment(images.clone(), targets.clone(), np.random.default_rng(1), spatial_share=0.5)[1])
    assert any(some) and not all(some)
    default, full = (augment(images.clone(), targets.clone(), np.random.default_rng(1), **share)[0]
                     for share in ({}, {"spatial_share": 1.0}))
    assert torch.equal(default, full)  # the whole share draws nothing more: earlier runs' batches stay


@pytest.mark.parametrize("field, value", [("thick_slices", 1.5), ("thick_slices", -0.1), ("loader_workers", -1),
                                          ("loss", "hinge"), ("ema", 1.0), ("ema", -0.5),
                                          ("target_zoom", 0), ("spatial_share", 1.5), ("spatial_share", -0.1)])
def test_a_recipe_value_out_of_range_is_refused_naming_its_field(field, value):
    from saunet.config import RecipeError

    with pytest.raises(RecipeError) as refused:
        TrainConfig(**{field: value})
    assert refused.value.field == field


def test_fine_targets_and_soft_labels_are_refused_together():
    with pytest.raises(RecipeError, match="choose one"):
        TrainConfig(target_zoom=2, soft_labels=True)


def test_ema_saves_the_moving_average_and_keeps_the_trained_weights_for_resuming(phantom_data, tmp_path):
    cases = list_cases(phantom_data)
    plain = TrainConfig(model_kwargs={"features": [4, 8, 16], "growth": 4}, epochs=1, steps_per_epoch=3, patch=32)
    trained = trained_weights(plain, cases, tmp_path / "plain")
    trained_weights(replace(plain, ema=0.5), cases, tmp_path / "ema")
    averaged = Checkpoint.load(tmp_path / "ema" / "checkpoint_last.pt")
    # the same steps (the average is only read), so the trained weights are the plain run's
    assert all(torch.equal(averaged.training_state_dict[k], trained[k]) for k in trained)
    moved = [k for k in trained if trained[k].is_floating_point() and not torch.equal(averaged.state_dict[k], trained[k])]
    assert moved and any(k.endswith("running_mean") for k in moved)
    assert Checkpoint.load(tmp_path / "plain" / "checkpoint_last.pt").training_state_dict is None


def test_an_interrupted_ema_run_resumes_to_the_uninterrupted_one(phantom_data, tmp_path, monkeypatch):
    import saunet.training as training

    cases = list_cases(phantom_data)
    config = TrainConfig(model_kwargs={"features": [4, 8, 16], "growth": 4}, epochs=2, steps_per_epoch=2, patch=32,
                         ema=0.7)
    train(config, cases[:4], cases[4:5], tmp_path / "straight", progress=False)
    validate, calls = training.validate, []

    def interrupted(run):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return validate(run)

    monkeypatch.setattr(training, "validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, cases[:4], cases[4:5], tmp_path / "resumed", progress=False)
    assert Checkpoint.load(tmp_path / "resumed" / "checkpoint_last.pt").epoch == 1
    monkeypatch.setattr(training, "validate", validate)
    train(config, cases[:4], cases[4:5], tmp_path / "resumed", resume=True, progress=False)
    straight, resumed = (Checkpoint.load(tmp_path / run / "checkpoint_last.pt") for run in ("straight", "resumed"))
    for weights in ("state_dict", "training_state_dict"):
        a, b = getattr(straight, weights), getattr(resumed, weights)
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a), weights
