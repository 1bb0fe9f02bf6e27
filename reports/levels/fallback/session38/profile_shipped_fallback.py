"""Give the shipped fallback pair (trained with ``--contrast-curves 0.3`` on every scan of both shared sets) the
training profile the current code records for such a model (``quality.training_profile`` with its contrast curves),
in its checkpoints and in their ONNX exports' metadata; the weights are not touched.

    python reports/levels/fallback/session38/profile_shipped_fallback.py ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat

Refuses unless the profile of the scans as they are is the one the checkpoints hold (the same training scans).
"""

import json
import sys
from pathlib import Path

import onnx

from saunet.checkpoints import Checkpoint
from saunet.crossval import gather_cases
from saunet.inference import WEIGHTS
from saunet.quality import training_profile

SHIPPED_FALLBACK = ("spine_levels_sau_net_curves", "spine_levels_sau_net_curves_seed1")


def main(*data: str) -> None:
    cases = list(gather_cases([Path(d) for d in data]).values())
    plain = training_profile(cases).to_dict()
    for name in SHIPPED_FALLBACK:
        checkpoint = Checkpoint.load(WEIGHTS / f"{name}.pt")
        if checkpoint.training_profile != plain:
            sys.exit(f"{name}.pt: its profile is not that of the scans given: trained on other scans")
        checkpoint.training_profile = training_profile(cases, None, checkpoint.config["contrast_curves"]).to_dict()
        checkpoint.save(WEIGHTS / f"{name}.pt", with_optimizer=checkpoint.optimizer is not None)
        exported = onnx.load(WEIGHTS / f"{name}.onnx")
        entry = next(e for e in exported.metadata_props if e.key == "saunet_checkpoint")
        entry.value = json.dumps({**json.loads(entry.value), "training_profile": checkpoint.training_profile})
        onnx.save(exported, WEIGHTS / f"{name}.onnx")
        print(f"{name}: body intensity {checkpoint.training_profile['body_intensity']}, "
              f"body contrast {checkpoint.training_profile['body_contrast']}")


if __name__ == "__main__":
    main(*sys.argv[1:])
