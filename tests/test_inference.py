import json
import subprocess
import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest

from saunet.evaluation import overlap_metrics
from saunet.experiments.phantoms import make_phantom, phantom_volume
from saunet.imageio import read_volume
from saunet.inference import (
    SHIPPED,
    SHIPPED_ONNX,
    OnnxModel,
    Segmenter,
    TorchModel,
    averaged_in_place,
    body_box,
    forward_in_chunks,
    logits_in_box,
    predict_logits,
)
from saunet.orientation import volume_layout
from saunet.postprocessing import clean_mask


def saunet(*args):
    return subprocess.run([sys.executable, "-m", "saunet.cli", *map(str, args)], capture_output=True, text=True)


def tiny_model(name):
    import torch

    from saunet.models import create

    torch.manual_seed(0)
    widths = {"unet2d": {"features": (4, 4, 8, 8, 16, 4)}}.get(name, {"features": (4, 8, 16), "growth": 4})
    return create(name, **widths).eval()


@pytest.mark.parametrize("name", ["sau-net", "dense-unet", "unet2d"])
def test_chunked_inference_equals_whole_volume_inference(name):
    model = TorchModel(tiny_model(name))
    image = np.random.default_rng(0).normal(size=(1, 1, 11, 24, 20)).astype(np.float32)
    whole = model(image)
    assert model.slice_halo == {"sau-net": 1}.get(name, 0)
    assert np.allclose(predict_logits(model, image, model.slice_halo, chunk=4), whole, atol=1e-5)
    assert np.allclose(forward_in_chunks(model, image, model.slice_halo, chunk=4), whole, atol=1e-5)
    if model.slice_halo:  # without its halo a chunk's edge slice misses a neighbour
        assert not np.allclose(forward_in_chunks(model, image, 0, chunk=4), whole, atol=1e-5)
        assert not np.allclose(predict_logits(model, image, 0, chunk=4), whole, atol=1e-5)


@pytest.mark.parametrize("name", ["sau-net", "unet2d"])
def test_onnx_export_gives_chunks_and_their_boundary_terms(name, tmp_path):
    from saunet.export import export_module_onnx

    net = tiny_model(name)
    onnx_model = OnnxModel(export_module_onnx(net, tmp_path / "model.onnx"))
    assert onnx_model.has_boundary_terms == (name == "sau-net")
    assert onnx_model.slice_halo == net.slice_halo  # exported in the file's metadata
    image = np.random.default_rng(1).normal(size=(1, 1, 9, 33, 30)).astype(np.float32)
    whole = TorchModel(net)(image)
    for chunk in (0, 1, 3, 4):
        assert np.allclose(predict_logits(onnx_model, image, onnx_model.slice_halo, chunk), whole, atol=1e-4)


def previous_sau_net_graph(net):
    """SAU-Net as `saunet export` wrote it before the chunk graph: image -> image_features and image_logits,
    features -> logits."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, image, features):
            image_features = self.net.slice_features(image)
            return image_features, self.net.decode(image_features), self.net.decode(features)

    return Graph()


def export_previous_sau_net(net, path, outputs=("image_features", "image_logits", "logits")):
    import warnings

    import torch

    axes = {2: "slices", 3: "height", 4: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(previous_sau_net_graph(net).eval(), (torch.zeros(1, 1, 5, 61, 67), torch.zeros(1, 5, 4, 61, 67)),
                          str(path), dynamo=False, input_names=["image", "features"],
                          output_names=["image_features", "image_logits", "logits"],
                          dynamic_axes={"image": axes, "features": {1: "slices", 3: "height", 4: "width"},
                                        "image_features": {1: "slices", 3: "height", 4: "width"},
                                        "image_logits": axes, "logits": axes})
    if len(outputs) < 3:
        import onnx

        proto = onnx.load(str(path))
        kept = [o for o in proto.graph.output if o.name in outputs]
        del proto.graph.output[:]
        proto.graph.output.extend(kept)
        onnx.save(proto, str(path))
    return path


def test_sau_net_onnx_exports_from_before_the_chunk_graph_still_run(tmp_path):
    net = tiny_model("sau-net")
    model = OnnxModel(export_previous_sau_net(net, tmp_path / "model.onnx"))
    assert not model.has_boundary_terms
    image = np.random.default_rng(1).normal(size=(1, 1, 9, 33, 30)).astype(np.float32)
    whole = TorchModel(net)(image)
    for chunk in (0, 4):
        assert np.allclose(predict_logits(model, image, 1, chunk), whole, atol=1e-4)


def test_sau_net_onnx_exports_without_image_logits_ask_for_a_new_export(tmp_path):
    from saunet.errors import InputError

    path = export_previous_sau_net(tiny_model("sau-net"), tmp_path / "old.onnx", outputs=("image_features", "logits"))
    with pytest.raises(InputError, match="export it again"):
        OnnxModel(path)


def test_sau_net_boundary_terms_hold_for_several_classes():
    import torch

    from saunet.models import create

    torch.manual_seed(0)
    model = TorchModel(create("sau-net", out_channels=3, features=(4, 8, 16), growth=4).eval())
    image = np.random.default_rng(3).normal(size=(1, 1, 11, 24, 20)).astype(np.float32)
    whole = model(image)
    for chunk in (1, 2, 4, 5):
        assert np.allclose(predict_logits(model, image, 1, chunk), whole, atol=1e-5), chunk


def test_small_components_are_removed_by_volume():
    mask = np.zeros((10, 10, 10), bool)
    mask[:5, :5, :5] = True  # 125 voxels
    mask[8, 8, 8] = True
    kept = clean_mask(mask, (2.0, 1.0, 1.0), min_mm3=100)
    assert kept.sum() == 125 and not kept[8, 8, 8]
    assert clean_mask(mask, (2.0, 1.0, 1.0), min_mm3=0).sum() == 126


def test_only_the_largest_components_are_kept():
    mask = np.zeros((12, 10, 10), bool)
    mask[0:3] = True  # 300 voxels
    mask[4:5, :5] = True  # 50
    mask[6:8] = True  # 200
    mask[9:10, 9, 9] = True  # 1, under min_mm3
    kept = clean_mask(mask, (1.0, 1.0, 1.0), min_mm3=2, max_components=2)
    assert kept[0:3].all() and kept[6:8].all() and not kept[4].any() and not kept[9].any()
    assert clean_mask(mask, (1.0, 1.0, 1.0), min_mm3=2, max_components=5).sum() == 550
    assert clean_mask(mask, (1.0, 1.0, 1.0), min_mm3=0, max_components=0).sum() == 551


def test_segment_keeps_the_geometry_of_real_scans(lumbar, tmp_path, tiny_checkpoint):
    scans = sorted((lumbar / "imagesTr").glob("*.nii.gz"))[:2]
    result = saunet("segment", *scans, "-o", tmp_path / "out", "--model", tiny_checkpoint, "--prob")
    assert result.returncode == 0, result.stderr
    assert not list((tmp_path / "out").glob("*_0000*"))  # named as nnU-Net names predictions: by case
    for scan in scans:
        name = scan.name.replace("_0000.nii.gz", "")
        original, written = nibabel.load(scan), nibabel.load(tmp_path / "out" / f"{name}.nii.gz")
        assert written.shape == original.shape
        assert np.allclose(written.affine, original.affine, atol=1e-4)
        assert np.array_equal(written.header.get_zooms(), original.header.get_zooms())
        prob = nibabel.load(tmp_path / "out" / f"{name}_prob.nii.gz")
        assert prob.shape == original.shape and 0 <= prob.get_fdata().min() and prob.get_fdata().max() <= 1


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_output_format_follows_the_input(tmp_path, tiny_checkpoint, suffix):
    from saunet.imageio import write_like

    volume = phantom_volume(make_phantom(3, shape=(7, 48, 48)), tmp_path / "x")
    scan = write_like(volume.array, volume, tmp_path / f"scan{suffix}")
    result = saunet("segment", scan, "-o", tmp_path / f"seg{suffix}", "--model", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    out = read_volume(tmp_path / f"seg{suffix}")
    assert out.array.shape == volume.array.shape
    assert np.allclose(out.direction, volume.direction) and np.allclose(out.origin, volume.origin)


def test_levels_need_a_level_model(tmp_path, tiny_checkpoint, lumbar):
    scan = sorted((lumbar / "imagesTr").glob("*.nii.gz"))[0]
    result = saunet("segment", scan, "-o", tmp_path / "s.nii.gz", "--model", tiny_checkpoint, "--levels")
    assert result.returncode == 2 and "--levels" in result.stderr and not (tmp_path / "s.nii.gz").exists()


def test_onnx_export_gives_the_same_masks(lumbar, tmp_path, tiny_checkpoint):
    onnx_path = tmp_path / "model.onnx"
    result = saunet("export", "--model", tiny_checkpoint, "--onnx", onnx_path)
    assert result.returncode == 0, result.stderr
    torch_seg, onnx_seg = Segmenter(tiny_checkpoint), Segmenter(onnx_path)
    for scan in sorted((lumbar / "imagesTr").glob("*.nii.gz"))[:2]:
        volume = read_volume(scan)
        a, b = torch_seg.segment(volume), onnx_seg.segment(volume)
        assert np.abs(a.probabilities - b.probabilities).max() < 1e-3
        assert overlap_metrics(a.labels > 0, b.labels > 0)["dice"] >= 0.999


def test_shipped_model_segments_real_scans(lumbar, tmp_path):
    assert all(path.exists() for path in SHIPPED + SHIPPED_ONNX), "the shipped ensemble is part of the package"
    dice = []
    for scan in sorted((lumbar / "imagesTr").glob("*.nii.gz"))[:3]:
        out = tmp_path / scan.name
        result = saunet("segment", scan, "-o", out)
        assert result.returncode == 0, result.stderr
        written, original = read_volume(out), read_volume(scan)
        assert written.array.shape == original.array.shape
        assert np.allclose(written.direction, original.direction) and np.allclose(written.origin, original.origin)
        reference = read_volume(lumbar / "labelsTr" / scan.name.replace("_0000", ""))
        dice.append(overlap_metrics(written.array > 0, reference.array > 0)["dice"])
    print("shipped model Dice on (training) scans:", [round(d, 4) for d in dice])
    assert min(dice) > 0.85  # these scans were in its training set: a loose sanity bound, not the target


def shipped_onnx_parity(scans):
    onnx_seg, torch_seg = Segmenter(SHIPPED_ONNX), Segmenter(SHIPPED)
    assert Segmenter().paths == list(SHIPPED_ONNX) and len(SHIPPED) == 2  # the default CPU path: both members
    for scan in scans:
        volume = read_volume(scan)
        dice = overlap_metrics(torch_seg.segment(volume).labels > 0, onnx_seg.segment(volume).labels > 0)["dice"]
        print(scan.name, f"ONNX vs PyTorch Dice {dice:.5f}")
        assert dice >= 0.999


def test_shipped_onnx_matches_the_shipped_checkpoint(lumbar):
    shipped_onnx_parity(sorted((lumbar / "imagesTr").glob("*.nii.gz"))[:2])


@pytest.mark.slow
def test_shipped_onnx_matches_the_shipped_checkpoint_on_every_real_scan(lumbar):
    shipped_onnx_parity(sorted((lumbar / "imagesTr").glob("*.nii.gz")))


class NeighbourSum:
    """A fake model: features are the slices themselves; output slice i is the sum of the features of slices
    i-halo..i+halo (those that exist), so any edge slice decoded without its neighbours is wrong. With halo 1
    it gives boundary terms, as SAU-Net does."""

    def __init__(self, halo: int):
        self.halo = halo
        self.has_boundary_terms = halo == 1

    def __call__(self, x):
        out = np.zeros_like(x)
        for shift in range(-self.halo, self.halo + 1):
            lo, hi = max(shift, 0), x.shape[2] + min(shift, 0)
            if hi > lo:
                out[:, :, lo - shift : hi - shift] += x[:, :, lo:hi]
        return out

    def edges_and_logits(self, x):
        return np.moveaxis(x[:, :, [0, -1]], 2, 1), self(x)

    def boundary_terms(self, edges):
        return np.moveaxis(edges[:, ::-1], 1, 2)  # the slice before gets the slice after, and back


@pytest.mark.parametrize("halo", [1, 2, 3])
def test_chunks_equal_the_whole_volume_for_every_chunk_size(halo):
    model = NeighbourSum(halo)
    image = np.random.default_rng(2).normal(size=(1, 1, 13, 3, 2)).astype(np.float32)
    whole = model(image)
    for chunk in range(1, 14):
        assert np.allclose(predict_logits(model, image, halo, chunk), whole, atol=1e-5), chunk


def test_quality_control_reuses_the_intensities_the_network_saw(lumbar):
    """QC's intensity statistics from the segmenter's own normalisation equal those QC computes afresh."""
    from saunet.quality import assess

    segmenter = Segmenter()
    volume = read_volume(sorted((lumbar / "imagesTr").glob("*.nii.gz"))[0])
    result = segmenter.segment(volume)
    assert result.intensities.shape == volume.array.shape and result.intensities.dtype == np.float32
    verdict = segmenter.assess(volume, result)
    again = assess(volume.array, volume.spacing, result.network_labels, result.probabilities, result.layout,
                   segmenter.label_map, segmenter.training_profile, disagreement=result.disagreement,
                   refined=result.labels, name_disagreement=result.name_disagreement)
    shared, afresh = verdict.statistics, again.statistics
    assert np.isfinite(shared["body_contrast"])
    assert shared.keys() == afresh.keys() and all(np.isclose(shared[k], afresh[k], atol=1e-5) for k in shared)
    assert all(0.8 < body.outline_agreement <= 1.0 for body in verdict.bodies)  # a training scan: the two outlines agree
    # the bodies judged from the probabilities in the segmentation's box as from the whole scan's
    assert verdict.bodies == again.bodies and verdict.bodies


def test_a_segmentation_keeps_its_probabilities_in_a_box_that_holds_every_body(lumbar):
    """Outside the box a segmentation keeps probabilities for, background is the most probable class and no voxel
    is labelled; inside, they are the whole scan's."""
    segmenter = Segmenter()
    volume = read_volume(sorted((lumbar / "imagesTr").glob("*.nii.gz"))[0])
    boxed, whole = segmenter.segment(volume), segmenter.segment(volume, whole_probabilities=True)
    assert np.array_equal(boxed.labels, whole.labels) and boxed.labels.any()
    assert boxed.box_probabilities.size < whole.box_probabilities.size / 4
    inside = np.zeros(volume.array.shape, bool)
    inside[boxed.box] = True
    assert not boxed.labels[~inside].any()
    assert not segmenter.label_map.decode(whole.box_probabilities[:, ~inside]).any()
    assert np.allclose(boxed.box_probabilities, whole.box_probabilities[(slice(None), *boxed.box)], atol=1e-6)
    assert np.array_equal(boxed.probabilities[:, ~inside], np.zeros_like(whole.box_probabilities[:, ~inside]))


def test_segmenter_decodes_logits_resampled_onto_the_scan(lumbar):
    """A boundary lies where the network's logits cross on the scan's grid, not half-way between two network
    pixels: the raw labels are the largest of the resampled logits, which differ from resampled probabilities."""
    segmenter = Segmenter()
    volume = read_volume(sorted((lumbar / "imagesTr").glob("*.nii.gz"))[0])
    logits, grid, _ = segmenter.network_logits(volume, volume_layout(volume, segmenter.slice_axis))
    classes = segmenter.label_map
    from_logits = classes.values(segmenter.preprocessor.inverse(logits, grid).argmax(0).astype(np.uint8))
    from_probabilities = classes.values(classes.decode(segmenter.preprocessor.inverse(classes.probabilities(logits), grid)))
    assert np.array_equal(segmenter.segment(volume).raw_labels, from_logits)
    assert (from_probabilities != from_logits).sum() > 1000  # 2849 of 77048 body voxels on this scan


def second_member(checkpoint_path, path, seed: int = 1):
    """The checkpoint with every weight shifted (by a draw of ``seed``): an ensemble member that disagrees with the
    first."""
    import torch

    from saunet.checkpoints import Checkpoint

    checkpoint = Checkpoint.load(checkpoint_path)
    torch.manual_seed(seed)
    checkpoint.state_dict = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                             for k, v in checkpoint.state_dict.items()}
    return checkpoint.save(path)


def test_an_ensemble_segments_with_its_members_mean_logits(tmp_path, tiny_level_checkpoint):
    other = second_member(tiny_level_checkpoint, tmp_path / "other.pt")
    onnx_path = tmp_path / "other.onnx"
    assert saunet("export", "--model", other, "--onnx", onnx_path).returncode == 0
    volume = phantom_volume(make_phantom(5, shape=(9, 48, 48)), tmp_path / "x")
    layout = volume_layout(volume)
    first, second = (Segmenter(path).network_logits(volume, layout)[0] for path in (tiny_level_checkpoint, other))
    ensemble = Segmenter([tiny_level_checkpoint, onnx_path])  # members may mix checkpoints and ONNX exports
    logits = ensemble.network_logits(volume, layout)[0]
    assert np.abs(first - second).max() > 0.1
    assert np.allclose(logits, (first + second) / 2, atol=1e-4)
    from saunet.imageio import write_like

    scan = write_like(volume.array, volume, tmp_path / "scan.nii.gz")
    result = saunet("segment", scan, "-o", tmp_path / "seg.nii.gz", "--levels",
                    "--model", tiny_level_checkpoint, "--model", other)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "seg.results.json").read_text())
    assert record["model"] == [str(tiny_level_checkpoint), str(other)]
    assert 0 <= record["quality"]["statistics"]["member_disagreement"] <= 1  # the members' disagreement judged
    assert Segmenter(tiny_level_checkpoint).segment(volume).disagreement is None


def test_an_ensemble_of_models_that_name_classes_differently_is_refused(tmp_path, tiny_checkpoint, tiny_level_checkpoint, lumbar):
    scan = sorted((lumbar / "imagesTr").glob("*.nii.gz"))[0]
    result = saunet("segment", scan, "-o", tmp_path / "s.nii.gz", "--model", tiny_level_checkpoint,
                    "--model", tiny_checkpoint)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and str(tiny_checkpoint) in result.stderr and "label_map" in result.stderr
    assert not list(tmp_path.glob("s.*"))


def test_a_later_ensemble_member_runs_on_the_first_members_body_slices_as_on_the_whole_volume(tiny_level_checkpoint):
    model = Segmenter(tiny_level_checkpoint).models[0]
    image = np.random.default_rng(0).normal(size=(1, 1, 20, 48, 48)).astype(np.float32)
    whole = predict_logits(model, image, model.slice_halo, 0)[0]
    part = logits_in_box(model, image, (slice(5, 11), slice(0, 48), slice(0, 48)), chunk=4)
    assert part.shape == (whole.shape[0], 6, 48, 48)
    assert np.allclose(part, whole[:, 5:11], atol=1e-4)  # its neighbours ran with the span's edge slices
    everything = tuple(slice(0, size) for size in whole.shape[1:])
    assert np.allclose(logits_in_box(model, image, everything, chunk=4), whole, atol=1e-4)
    cropped = logits_in_box(model, image, (slice(5, 11), slice(0, 32), slice(16, 48)), chunk=4)
    assert cropped.shape == (whole.shape[0], 6, 32, 32)


def test_the_first_members_body_box_is_widened_by_the_margins_on_the_pooling_grid():
    logits = np.zeros((3, 20, 100, 100), np.float32)
    logits[2, 4:7, 40:45, 70:72] = 1.0  # level 2 outscores background there
    assert body_box(logits, (3, 0, 0)) == (slice(1, 10), slice(32, 64), slice(64, 96))
    assert body_box(logits, (5, 10, 30)) == (slice(0, 12), slice(0, 64), slice(32, 100))
    assert body_box(np.zeros_like(logits), (3, 0, 0)) is None


def test_an_int8_export_segments_as_its_float_export(tmp_path, tiny_level_checkpoint, phantom_data):
    import onnx

    float_path, int8_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    scan = sorted((phantom_data / "imagesTr").glob("*.nii.gz"))[-1]  # scans and data-set folders calibrate alike
    result = saunet("export", "--model", tiny_level_checkpoint, "--onnx", float_path, "--int8", int8_path,
                    "--calibrate", phantom_data, scan)
    assert result.returncode == 0, result.stderr
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in onnx.load(str(int8_path)).graph.node}
    volume = read_volume(sorted((phantom_data / "imagesTr").glob("*.nii.gz"))[0])
    exact, quantized = Segmenter(float_path).segment(volume), Segmenter(int8_path).segment(volume)  # metadata kept
    assert np.abs(exact.probabilities - quantized.probabilities).mean() < 0.02
    assert (exact.raw_labels == quantized.raw_labels).mean() > 0.95


def test_an_int8_export_without_calibration_scans_is_refused(tmp_path, tiny_level_checkpoint):
    result = saunet("export", "--model", tiny_level_checkpoint, "--int8", tmp_path / "int8.onnx")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--calibrate" in result.stderr
    missing = tmp_path / "missing.nii.gz"
    result = saunet("export", "--model", tiny_level_checkpoint, "--onnx", tmp_path / "float.onnx", "--int8",
                    tmp_path / "int8.onnx", "--calibrate", missing)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and str(missing) in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_result_in_doubt_is_replaced_by_the_fallback_models_which_says_so(tmp_path, tiny_level_checkpoint, monkeypatch):
    import saunet.inference as inference

    other = second_member(tiny_level_checkpoint, tmp_path / "other.pt")
    volume = phantom_volume(make_phantom(5, shape=(9, 48, 48)), tmp_path / "x")
    monkeypatch.setattr(inference, "fallback_triggers", lambda verdict, unlike: ["in doubt"])
    result, verdict = Segmenter(tiny_level_checkpoint, fallback=other).segment_checked(volume)
    alone = Segmenter(other).segment(volume)
    assert result.model == str(other) and np.array_equal(result.labels, alone.labels)
    assert verdict.reasons[0].startswith("segmented by the fallback model other.pt")
    assert Segmenter(tiny_level_checkpoint, fallback=False).segment_checked(volume)[0].model == str(tiny_level_checkpoint)
    assert Segmenter(tiny_level_checkpoint).fallback_paths == []  # a model of one's own: no shipped fallback unasked
    third = second_member(tiny_level_checkpoint, tmp_path / "third.pt", seed=3)
    result, verdict = Segmenter(tiny_level_checkpoint, fallback=[other, third]).segment_checked(volume)
    assert np.array_equal(result.labels, Segmenter([other, third]).segment(volume).labels)  # an ensemble as fallback
    assert result.model == [str(other), str(third)] and "fallback model other.pt + third.pt," in verdict.reasons[0]
    monkeypatch.setattr(inference, "fallback_triggers", lambda verdict, unlike: [])
    assert Segmenter(tiny_level_checkpoint, fallback=other).segment_checked(volume)[0].model == str(tiny_level_checkpoint)


def test_the_fallbacks_results_are_refined_by_their_own_refiner_only_where_a_refiner_runs(tmp_path, tiny_level_checkpoint):
    from saunet.inference import fallback_refiner
    from saunet.refinement import SHIPPED, SHIPPED_FOR_FALLBACK

    other = second_member(tiny_level_checkpoint, tmp_path / "other.pt")
    segmenter = Segmenter(tiny_level_checkpoint, fallback=other, refine=SHIPPED, fallback_refine=SHIPPED_FOR_FALLBACK)
    assert segmenter.fallback().refiner.path == SHIPPED_FOR_FALLBACK and segmenter.refiner.path == SHIPPED
    assert Segmenter(tiny_level_checkpoint, fallback=other, refine=SHIPPED).fallback().refiner is None  # one's own
    first = segmenter.refiner
    assert fallback_refiner(None, True, first) == SHIPPED_FOR_FALLBACK  # the shipped fallback: its own refiner
    assert fallback_refiner(None, True, None) is False  # --no-refine: neither is refined
    assert fallback_refiner(True, [other], None) == SHIPPED_FOR_FALLBACK


def test_a_fallback_that_names_classes_otherwise_is_refused_before_anything_is_written(tmp_path, tiny_checkpoint,
                                                                                          tiny_level_checkpoint, lumbar):
    scan = sorted((lumbar / "imagesTr").glob("*.nii.gz"))[0]
    result = saunet("segment", scan, "-o", tmp_path / "s.nii.gz", "--model", tiny_level_checkpoint,
                    "--fallback", tiny_checkpoint)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and str(tiny_checkpoint) in result.stderr
    assert "names its classes otherwise" in result.stderr and not list(tmp_path.glob("s.*"))


def test_the_shipped_fallback_segments_an_inverted_scan_the_ensemble_cannot(lumbar, tmp_path):
    scan = lumbar / "imagesTr" / "lumbar_07_0000.nii.gz"  # inverted, its bodies darker than any training scan's
    image = nibabel.load(scan)
    inverted = tmp_path / "inverted.nii.gz"
    nibabel.save(nibabel.Nifti1Image(image.get_fdata().max() - image.get_fdata(), image.affine, image.header), inverted)
    reference = read_volume(lumbar / "labelsTr" / scan.name.replace("_0000", "")).array > 0
    dice = {}
    for name, extra in (("ensemble", ["--no-fallback"]), ("with fallback", [])):
        out = tmp_path / name / "seg.nii.gz"
        result = saunet("segment", inverted, "-o", out, *extra)
        assert result.returncode == 0, result.stderr
        dice[name] = overlap_metrics(read_volume(out).array > 0, reference)["dice"]
        record = json.loads((out.parent / "seg.results.json").read_text())
    print("inverted scan, Dice:", dice)
    assert [Path(path).name for path in record["model"]] == ["spine_levels_sau_net_curves.onnx",
                                                            "spine_levels_sau_net_curves_seed1.onnx"]
    assert Path(record["refiner"]).name == "outline_refiner_curves.onnx"  # the fallback's own refiner
    said = record["quality"]["reasons"][0]  # whatever its own QC's verdict, the hand-over is said
    assert said.startswith("segmented by the fallback model") and "fallback" in result.stderr
    assert dice["with fallback"] > dice["ensemble"] + 0.2 and dice["with fallback"] > 0.8


def test_an_ensemble_is_averaged_in_the_first_members_array_with_every_members_classes():
    rng = np.random.default_rng(0)
    members = [rng.normal(size=(8, 5, 6, 7)).astype(np.float32) for _ in range(3)]
    expected = (members[0] + members[1] + members[2]) / 3
    first = members[0].copy()
    member_classes, mean_classes = averaged_in_place(first, members[1:])
    assert np.allclose(first, expected, atol=1e-6)
    assert np.array_equal(mean_classes, first.argmax(0))
    assert all(np.array_equal(member_classes[k], members[k].argmax(0)) for k in range(3))
