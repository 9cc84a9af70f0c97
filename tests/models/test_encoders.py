"""Encoders: stride contract, freezing and pretrained loading.

That each encoder normalises its input as Keras's `preprocess_input` does
(RGB/BGR folding included) is checked in `test_claims.py`.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import h5py
import keras
import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT
from tfseg.models import encoders
from tfseg.models import list_encoders

# Building and loading run again on JAX; the tap table and the subprocess
# checks of Keras's weight cache (backend-independent) run once.
agnostic = pytest.mark.backend_agnostic

WEIGHT_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5"
# Layer of our model -> its group in the Keras 2-era weight file.
FILE_GROUPS = {
    "Conv1": "Conv1",
    "block_13_expand": "mobl13_conv_13_expand",
    "block_16_project": "mobl16_conv_16_project",
}


def file_kernel(weights, layer):
    group = FILE_GROUPS[layer]
    return weights[group][group]["kernel:0"][()]


def build_features(name, size=64, **kwargs):
    inputs = keras.Input((size, size, 3))
    features = encoders.build_encoder(name, inputs, **kwargs)
    return inputs, features


@agnostic
@pytest.mark.parametrize("name", list_encoders())
def test_feature_maps_have_the_stride_they_are_keyed_by(name):
    # This also checks that every layer name tapped from keras.applications
    # still exists in the installed Keras.
    _, features = build_features(name, size=64, depth=4)
    expected_strides = {1, 2, 4, 8, 16} if name == "unet" else {2, 4, 8, 16, 32}
    assert set(features) == expected_strides
    for stride, feature in features.items():
        assert tuple(feature.shape[1:3]) == (64 // stride, 64 // stride)


def test_application_taps_are_the_documented_layer_names():
    taps = {name: spec.taps for name, spec in encoders.APPLICATION_ENCODERS.items()}
    assert taps["mobilenet_v2"] == {
        2: "block_1_expand_relu",
        4: "block_3_expand_relu",
        8: "block_6_expand_relu",
        16: "block_13_expand_relu",
        32: "block_16_project",
    }
    assert taps["vgg16"][8] == "block3_pool"  # FCN's pool3
    assert taps["vgg16"][16] == "block4_pool"  # FCN's pool4


@agnostic
@pytest.mark.parametrize("name", ["unet", "mobilenet_v2"])
def test_freeze_makes_every_encoder_layer_untrainable(name):
    inputs, features = build_features(
        name, freeze=True, alpha=0.35 if name != "unet" else 1.0
    )
    encoder = keras.Model(inputs, list(features.values()))
    assert encoder.trainable_weights == []
    assert encoder.non_trainable_weights


@agnostic
@pytest.mark.parametrize("alpha", [0.35, 0.5])
def test_weights_file_path_loads_the_file_values(shared_data, alpha):
    path = shared_data / "keras_weights" / WEIGHT_FILE.format(alpha=alpha)
    inputs, features = build_features(
        "mobilenet_v2", size=96, weights=str(path), alpha=alpha
    )
    encoder = keras.Model(inputs, features[32])
    with h5py.File(path) as weights:
        for layer in FILE_GROUPS:
            np.testing.assert_array_equal(
                encoder.get_layer(layer).get_weights()[0], file_kernel(weights, layer)
            )


def run_python(code, keras_home, extra_env=None):
    """Runs `code` in a fresh interpreter with KERAS_HOME set (read at import)."""
    env = dict(os.environ, KERAS_HOME=str(keras_home), **(extra_env or {}))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_imagenet_weights_load_through_the_keras_cache(shared_data, tmp_path):
    """`encoder_weights="imagenet"` finds the files in $KERAS_HOME/models/."""
    (tmp_path / "models").mkdir()
    for alpha in (0.35, 0.5):
        name = WEIGHT_FILE.format(alpha=alpha)
        shutil.copy(shared_data / "keras_weights" / name, tmp_path / "models" / name)
    result = run_python(
        """
        import h5py, numpy as np, os
        from tfseg.models import create_model
        from tests.models.test_encoders import FILE_GROUPS, WEIGHT_FILE, file_kernel
        for alpha in (0.35, 0.5):
            model = create_model(
                "mobilenet_unet", input_shape=(96, 96, 3), alpha=alpha,
                encoder_weights="imagenet", freeze_encoder=True,
            )
            name = WEIGHT_FILE.format(alpha=alpha)
            with h5py.File(os.path.join(os.environ["KERAS_HOME"], "models", name)) as f:
                for layer in FILE_GROUPS:
                    actual = model.get_layer(layer).get_weights()[0]
                    np.testing.assert_array_equal(actual, file_kernel(f, layer))
            print("loaded", alpha)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded 0.35" in result.stdout and "loaded 0.5" in result.stdout


def test_missing_imagenet_weights_offline_say_where_to_put_them(tmp_path):
    # The proxy on a closed local port makes any download fail at once, even
    # on a machine with network access.
    proxy = "http://127.0.0.1:9"
    result = run_python(
        """
        from tfseg.models import create_model
        create_model("mobilenet_unet", alpha=0.35, encoder_weights="imagenet")
        """,
        tmp_path,
        {"https_proxy": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy},
    )
    assert result.returncode != 0
    assert (
        "OSError: Could not load the ImageNet weights of mobilenet_v2" in result.stderr
    )
    assert "$KERAS_HOME/models/" in result.stderr
    assert "encoder_weights=None" in result.stderr
