from pathlib import Path

import pytest

from vostutorial.data import SynthConfig, generate
from vostutorial.paths import real_davis

# Real DAVIS 2016 sequences beside the project (never copied into it); tests using them skip
# where absent.
REAL_DAVIS = real_davis()

SMALL = SynthConfig(train_videos=6, valid_videos=4, seed=3, size=(64, 112), frames=8)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small synthetic dataset, generated once per test session. Do not modify it."""
    return generate(tmp_path_factory.mktemp("synth"), SMALL, workers=1, progress=False)


@pytest.fixture
def synth_copy(synth_root, tmp_path) -> Path:
    """A private copy of the small dataset that a test may damage."""
    import shutil

    dst = tmp_path / "synth"
    shutil.copytree(synth_root, dst)
    return dst


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """An untrained tiny model at 64x96, exported like the shipped checkpoint."""
    import torch

    from vostutorial.checkpoint import export_model
    from vostutorial.models import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    model = build_model("tiny", input_size=(64, 96))
    # untrained, tiny only copies the given mask forward (its last layer starts at zero):
    # give the decoder a say, as training does
    torch.nn.init.normal_(model.decoder.out.weight, std=0.05)
    export_model(model, path)
    return path
