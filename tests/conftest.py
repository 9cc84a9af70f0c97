"""Shared test set-up: quiet TensorFlow, the shared data folder, clean state."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Real Oxford-IIIT Pet sample and Keras weights, never committed: read from
# ../shared/data (or $TFSEG_SHARED_DATA); tests that need them skip without.
SHARED_DATA = pathlib.Path(
    os.environ.get("TFSEG_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)


@pytest.fixture
def shared_data():
    """Path of the shared data folder; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts with float32, a fixed seed and fresh layer names."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()
