from pathlib import Path

import pytest

from vostutorial.data import SynthConfig, generate

# Real data beside the project (never copied into it); tests using it skip where absent.
REAL_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "real-samples"

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
