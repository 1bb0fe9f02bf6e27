import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
LUMBAR = Path(os.environ.get("SAUNET_LUMBAR", REPO.parent / "shared" / "data" / "lumbar-t2"))

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def lumbar() -> Path:
    """The real lumbar T2 data set; these tests fail (never skip) when it is missing."""
    assert (LUMBAR / "imagesTr").is_dir(), f"real data expected at {LUMBAR}"
    return LUMBAR


TINY = {"features": [4, 8, 16], "growth": 4}


@pytest.fixture(scope="session")
def phantom_data(tmp_path_factory) -> Path:
    """Six small phantoms in nnU-Net raw layout."""
    from saunet.experiments.phantoms import write_cohort

    folder = tmp_path_factory.mktemp("phantoms")
    write_cohort(folder, 6, seed=10, shape=(7, 48, 48))
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(phantom_data, tmp_path_factory) -> Path:
    """A tiny SAU-Net trained for two short epochs on the phantoms."""
    from saunet.datasets import list_cases
    from saunet.training import TrainConfig, train

    run = tmp_path_factory.mktemp("tiny-run")
    cases = list_cases(phantom_data)
    config = TrainConfig(model_kwargs=TINY, epochs=2, steps_per_epoch=3, patch=32, lr=1e-2, loss="dice-bce")
    train(config, cases[:5], cases[5:], run, progress=False)
    return run / "checkpoint_best.pt"


@pytest.fixture(scope="session")
def tiny_level_checkpoint(phantom_data, tmp_path_factory) -> Path:
    """A tiny SAU-Net trained briefly on the phantoms to name their 5 bodies as levels 1..5 (T11..L3)."""
    from saunet.datasets import list_cases
    from saunet.training import TrainConfig, train

    run = tmp_path_factory.mktemp("tiny-level-run")
    cases = list_cases(phantom_data)
    config = TrainConfig(model_kwargs=TINY, epochs=2, steps_per_epoch=3, patch=32, lr=1e-2, loss="dice-bce",
                         classes=(1, 2, 3, 4, 5))
    train(config, cases[:5], cases[5:], run, progress=False)
    return run / "checkpoint_best.pt"
