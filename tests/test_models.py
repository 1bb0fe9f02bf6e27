import pytest
import torch

from saunet.models import MODELS, PAPER_WIDTH, count_flops, count_parameters, create, full_arguments

SMALL = {
    "sau-net": {"features": (4, 8, 16), "growth": 4},
    "dense-unet": {"features": (4, 8, 16), "growth": 4},
    "unet2d": {"features": (4, 4, 8, 8, 16, 4)},
    "unet3d": {"features": (2, 2, 4, 4, 8, 2)},
}


def small(name, **kwargs):
    torch.manual_seed(0)
    return create(name, **SMALL[name], **kwargs).eval()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("depth", [1, 2, 13, 39])
def test_output_shape_for_any_depth_and_odd_size(name, depth):
    model = small(name, out_channels=2)
    with torch.no_grad():
        out = model(torch.randn(1, 1, depth, 19, 23))
    assert out.shape == (1, 2, depth, 19, 23)


def _slice_change(model, perturbed: int, watched: int) -> float:
    x = torch.randn(1, 1, 7, 21, 17)
    y = x.clone()
    y[:, :, perturbed] += torch.randn_like(y[:, :, perturbed]) * 3
    with torch.no_grad():
        return (model(x)[:, :, watched] - model(y)[:, :, watched]).abs().max().item()


def test_sau_net_slice_i_sees_only_its_neighbours():
    model = small("sau-net")
    assert _slice_change(model, perturbed=5, watched=3) == 0.0  # slice i+2
    assert _slice_change(model, perturbed=1, watched=3) == 0.0  # slice i-2
    assert _slice_change(model, perturbed=4, watched=3) > 1e-6  # slice i+1
    assert _slice_change(model, perturbed=2, watched=3) > 1e-6  # slice i-1
    assert _slice_change(model, perturbed=3, watched=3) > 1e-6


def test_per_slice_models_ignore_neighbours_and_unet3d_does_not():
    for name in ("dense-unet", "unet2d"):
        assert _slice_change(small(name), perturbed=4, watched=3) == 0.0
    assert _slice_change(small("unet3d"), perturbed=4, watched=3) > 1e-6


def test_edge_slices_have_one_neighbour():
    model = small("sau-net")
    assert _slice_change(model, perturbed=1, watched=0) > 1e-6
    assert _slice_change(model, perturbed=2, watched=0) == 0.0
    assert _slice_change(model, perturbed=5, watched=6) > 1e-6


@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_reach_every_parameter(name):
    model = small(name).train()
    model(torch.randn(2, 1, 3, 17, 19)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", list(MODELS))
def test_same_seed_same_output(name):
    x = torch.randn(1, 1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(small(name)(x), small(name)(x))


def test_paper_width_is_reachable():
    params = count_parameters(create("sau-net", **PAPER_WIDTH))
    assert 30e6 < params < 45e6  # the paper: about 38 M


@pytest.mark.parametrize("name", list(MODELS))
def test_full_arguments_name_every_default_and_rebuild_the_same_network(name):
    arguments = full_arguments(name, **SMALL[name])
    assert {"in_channels", "out_channels", "features"} <= set(arguments)
    if name in ("sau-net", "dense-unet"):
        assert arguments["growth"] == 4 and arguments["layers"] == 2  # given, and the default filled in
    rebuilt = create(name, **arguments)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in small(name).state_dict().items()}


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        create("vnet")


def test_flops_of_a_conv_are_counted():
    model = torch.nn.Conv3d(1, 1, 1, bias=False)
    assert count_flops(model, (1, 1, 2, 3, 4)) == 2 * 24


def test_info_command_lists_every_model():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "saunet.cli", "info", "--shape", "5", "33", "35"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in MODELS:
        assert f"| {name} |" in out.stdout


@pytest.mark.parametrize("name", ["sau-net", "dense-unet"])
def test_summed_dense_blocks_compute_the_same_function(name):
    import copy

    torch.manual_seed(0)
    model = create(name, features=(4, 8, 16), growth=4)
    for module in model.modules():  # batch norm statistics far from the identity, so folding them is tested
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    summed = copy.deepcopy(model)
    summed.slice_features.net2d.sum_concatenations()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in summed.modules())
    x = torch.randn(1, 1, 5, 29, 37)
    with torch.no_grad():
        assert torch.allclose(summed(x), model(x), atol=1e-5)
