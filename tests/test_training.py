"""`tfseg train` end to end: run folders, reports, resume after a kill, devices."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT
from tests.conftest import TINY
from tests.conftest import copy_run
from tests.conftest import small_model_flags
from tests.conftest import xla_flags
from tests.without_tensorflow import run as run_without_tensorflow
from tfseg import files
from tfseg import runs
from tfseg.cli import main as cli_main
from tfseg.data import write_synthetic_pets
from tfseg.train import devices as devices_module

PNG_MAGIC = b"\x89PNG"


def train_code(tmp_path, *flags):
    """Exit code of `tfseg train` on 20 synthetic pets at 32 px."""
    return cli_main(["train", *TINY, "--output-dir", str(tmp_path), *flags])


def run_main(tmp_path, *flags, name="run"):
    """Trains a tiny run named `name` in `tmp_path`; returns its folder."""
    assert train_code(tmp_path, "--run-name", name, *flags) == 0
    return os.path.join(tmp_path, name)


def history_rows(run_dir):
    return runs.history_rows(run_dir)


def read_json(path):
    return files.read_json(os.fspath(path))


RUN_FILES = {
    "config.json",
    "state.json",
    "history.csv",
    "last.keras",
    "best.keras",
    "model.keras",
    "metrics.json",
    "metrics.md",
    "predictions.png",
    "curves.png",
}


def test_a_run_writes_every_file_of_its_folder(finished_run):
    # The one end-to-end run; tests/models train every model a step.
    assert RUN_FILES <= set(os.listdir(finished_run))
    saved = read_json(os.path.join(finished_run, "config.json"))
    assert saved["config"]["model"] == "unet"
    assert saved["precision"] == "float32"  # CPU
    assert saved["versions"]["keras"] == keras.__version__
    assert os.path.isabs(saved["config"]["output_dir"])
    assert [int(row["epoch"]) for row in history_rows(finished_run)] == [0, 1]
    assert read_json(os.path.join(finished_run, "state.json"))["finished"] is True
    report = read_json(os.path.join(finished_run, "metrics.json"))
    assert report["images"] == saved["examples"]["test"] > 0
    assert "synthetic" in report["data"]["source"]
    for resolution in ("training_resolution", "original_resolution"):
        scores = report[resolution]
        assert 0 <= scores["mean_iou"] <= 1 and len(scores["iou"]) == 3
    for picture in ("predictions.png", "curves.png"):
        with open(os.path.join(finished_run, picture), "rb") as file:
            assert file.read(4) == PNG_MAGIC


@pytest.mark.parametrize("name", ["config.json", "state.json", "metrics.json"])
def test_run_files_follow_the_umask(finished_run, name):
    # mkstemp makes 0600 files; a run's files are the user's usual 0644.
    mask = os.umask(0)
    os.umask(mask)
    mode = os.stat(os.path.join(finished_run, name)).st_mode & 0o777
    assert mode == 0o666 & ~mask


@pytest.mark.slow
def test_saved_model_reloads_without_tfseg(finished_run):
    run_dir = finished_run
    code = textwrap.dedent(
        f"""
        import sys, keras, numpy as np
        model = keras.models.load_model({os.path.join(run_dir, "model.keras")!r})
        assert not [name for name in sys.modules if name.startswith("tfseg")]
        print(model(np.zeros((1, 32, 32, 3), "float32")).shape)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 32, 32, 3)" in result.stdout


def test_evaluate_and_predict_commands(finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    before = read_json(os.path.join(run_dir, "metrics.json"))
    os.remove(os.path.join(run_dir, "metrics.json"))
    assert cli_main(["evaluate", run_dir]) == 0
    after = read_json(os.path.join(run_dir, "metrics.json"))
    # pytest.approx takes flat containers: compare score by score.
    for key, value in before["training_resolution"].items():
        assert after["training_resolution"][key] == pytest.approx(value), key
    assert "| training resolution |" in capsys.readouterr().out

    from PIL import Image

    photo = tmp_path / "my_cat.png"
    Image.fromarray(np.full((50, 70, 3), 128, np.uint8)).save(photo)
    assert (
        cli_main(["predict", run_dir, str(photo), "--out", str(tmp_path / "out")]) == 0
    )

    def read(name):
        with Image.open(tmp_path / "out" / name) as picture:
            return picture.mode, np.asarray(picture)

    _, mask = read("my_cat_mask.png")
    assert mask.shape == (50, 70) and set(np.unique(mask)) <= {0, 1, 2}
    mode, colour = read("my_cat_colour.png")  # the same ids, as a palette PNG
    assert mode == "P" and np.array_equal(colour, mask)
    _, overlay = read("my_cat_overlay.png")
    assert overlay.shape[0] == 50 + 16  # the legend strip below the photo


def run_savedmodel(path, images):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # keep it: it owns the variables
    return loaded.serve(images).numpy()


def run_tflite(path, images):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.resize_tensor_input(0, images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def run_onnx(path, images):
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(path))
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
@pytest.mark.filterwarnings("ignore:In the future `np.object`:FutureWarning")
@pytest.mark.parametrize(
    "export_format, file_name, run",
    [
        ("savedmodel", "savedmodel", run_savedmodel),
        ("tflite", "model.tflite", run_tflite),
        ("onnx", "model.onnx", run_onnx),
    ],
)
def test_exported_models_give_the_keras_logits(
    finished_run, tmp_path, export_format, file_name, run
):
    if export_format == "onnx":
        pytest.importorskip("tf2onnx")
    out = tmp_path / file_name
    assert (
        cli_main(
            ["export", finished_run, "--format", export_format] + ["--out", str(out)]
        )
        == 0
    )
    model = keras.models.load_model(os.path.join(finished_run, "model.keras"))
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    images = images.astype(np.float32)
    np.testing.assert_allclose(
        run(out, images), keras.ops.convert_to_numpy(model(images)), atol=1e-4
    )


@pytest.mark.slow
def test_short_real_run_beats_the_all_background_predictor(shared_data, real_run):
    report = read_json(os.path.join(real_run, "metrics.json"))
    scores = report["training_resolution"]
    # Predicting background everywhere scores IoU = background share for
    # background and 0 for pet and border.
    from tfseg import data

    test = data.load_oxford_pet(shared_data / "oxford_iiit_pet", 64, splits=["test"])[
        "test"
    ]
    all_background = float((test.masks == 1).mean()) / 3
    assert report["images"] == len(test) == 163
    assert scores["mean_iou"] > all_background + 0.15, (scores, all_background)


@pytest.mark.parametrize(
    "devices, expected",
    [
        ([{"kind": "CPU", "compute_capability": None}], "float32"),
        ([{"kind": "GPU", "compute_capability": (9, 0)}], "mixed_bfloat16"),
        ([{"kind": "GPU", "compute_capability": (8, 0)}] * 2, "mixed_bfloat16"),
        ([{"kind": "GPU", "compute_capability": (7, 5)}], "mixed_float16"),
        (
            [
                {"kind": "GPU", "compute_capability": (8, 6)},
                {"kind": "GPU", "compute_capability": (7, 0)},
            ],
            "mixed_float16",
        ),
        ([{"kind": "GPU", "compute_capability": (6, 1)}], "float32"),
        ([{"kind": "TPU", "compute_capability": None}], "mixed_bfloat16"),
    ],
)
def test_automatic_precision_follows_the_devices(devices, expected):
    assert devices_module.choose_precision("auto", devices) == expected
    assert devices_module.choose_precision("float32", devices) == "float32"


def test_mixed_float16_training_scales_the_loss(tmp_path):
    run_dir = run_main(
        tmp_path,
        *small_model_flags("unet"),
        "--epochs",
        "1",
        "--precision",
        "mixed_float16",
        "--loss",
        "dice",
    )
    saved = read_json(os.path.join(run_dir, "config.json"))
    assert saved["precision"] == "mixed_float16"
    model = keras.models.load_model(os.path.join(run_dir, "last.keras"))
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    assert np.isfinite(float(history_rows(run_dir)[0]["loss"]))


def test_class_weights_weight_the_loss_of_each_pixel(tmp_path):
    """`--class-weights` reach the loss through the training batches: the
    compiled loss of a batch is the mean over pixels of each pixel's class
    weight times its cross-entropy, computed here by hand."""
    from tfseg.config import TrainConfig
    from tfseg.data.loading import load_splits
    from tfseg.data.loading import make_batches
    from tfseg.train.modeling import build_model
    from tfseg.train.modeling import compile_model

    weights = (1.0, 2.0, 5.0)
    config = TrainConfig(
        synthetic=8,
        image_size=32,
        batch_size=4,
        loss="ce",
        class_weights=weights,
        augment=False,
        val_fraction=0.0,
        output_dir=str(tmp_path),
        model="unet",
        model_args={"base_filters": 4, "depth": 2},
        encoder_weights="none",
    )
    splits = load_splits(config, splits=["train"])
    images, masks, pixel_weights = next(
        iter(make_batches(config, splits["train"], training=True))
    )
    model = build_model(config)
    compile_model(model, config, steps_per_epoch=1)
    logits = model(images, training=False)
    loss = model.compute_loss(
        x=images, y=masks, y_pred=logits, sample_weight=pixel_weights
    )
    logits = keras.ops.convert_to_numpy(logits).astype(np.float64)
    labels = np.asarray(masks)[..., 0]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
    by_hand = (np.asarray(weights)[labels] * cross_entropy).mean()
    assert float(loss) == pytest.approx(by_hand, rel=1e-4)
    assert not by_hand == pytest.approx(cross_entropy.mean(), rel=1e-2)


def launch(tmp_path, *flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    # Ctrl-C as in a terminal, even where the suite itself runs in the
    # background (whose children inherit an ignored SIGINT). Set in the
    # child's Python, not by preexec_fn: a fork of this process, where JAX
    # may be loaded, warns.
    start = (
        "import runpy, signal, sys; "
        "signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            start,
            "train_pet.py",
            "--synthetic",
            "24",
            "--image-size",
            "32",
            "--batch-size",
            "2",
            "--output-dir",
            str(tmp_path),
            *flags,
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_resume_after_sigkill_accounts_for_every_epoch(tmp_path):
    flags = [*small_model_flags("unet"), "--epochs", "6", "--run-name", "killed"]
    run_dir = tmp_path / "killed"
    process = launch(tmp_path, *flags)
    deadline = time.time() + 240
    while time.time() < deadline:
        state = files.read_json(run_dir / "state.json", {"epochs_done": 0})
        if state["epochs_done"] >= 2:
            break
        if process.poll() is not None:
            pytest.fail(f"training ended early: {process.stdout.read()[-2000:]}")
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    killed_at = files.read_json(run_dir / "state.json")["epochs_done"]
    assert 2 <= killed_at < 6
    # The checkpoint on disk is whole: it loads.
    keras.models.load_model(run_dir / "last.keras")

    resumed = launch(tmp_path, "--resume", str(run_dir))
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output[-3000:]
    assert [int(row["epoch"]) for row in history_rows(run_dir)] == list(range(6))
    assert files.read_json(run_dir / "state.json")["epochs_done"] == 6
    assert f"Epoch {killed_at + 1}/6" in output and "Epoch 1/6" not in output
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    code = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfseg.cli import main
        code = main(["train",
            "--synthetic", "16", "--image-size", "32", "--batch-size", "4",
            "--epochs", "1", "--strategy", "mirrored", "--model", "unet",
            "--model-arg", "base_filters=4", "--output-dir", {str(tmp_path)!r},
            "--run-name", "mirrored"])
        assert code == 0, code
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "mirrored"
    saved = files.read_json(os.path.join(run_dir, "config.json"))
    assert saved["strategy"] == "MirroredStrategy"
    assert "num_replicas_in_sync" not in result.stderr  # no errors about replicas
    assert len(history_rows(run_dir)) == 1


@pytest.mark.backend_agnostic
def test_training_path_runs_under_the_current_backend(tmp_path):
    # CI runs this again with KERAS_BACKEND=jax, the GPU machines' backend.
    run_dir = run_main(tmp_path, *small_model_flags("unet"), "--epochs", "1")
    saved = files.read_json(os.path.join(run_dir, "config.json"))
    assert saved["versions"]["backend"] == keras.backend.backend()
    assert len(history_rows(run_dir)) == 1
    assert os.path.isfile(os.path.join(run_dir, "metrics.json"))


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    run_dir = tmp_path / "stopped"
    process = launch(
        tmp_path, *small_model_flags("unet"), "--epochs", "50", "--run-name", "stopped"
    )
    deadline = time.time() + 240
    while (
        files.read_json(run_dir / "state.json", {"epochs_done": 0})["epochs_done"] < 1
    ):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output[-2000:]
    assert "continue with:" in output and f"--resume {run_dir}" in output
    keras.models.load_model(run_dir / "interrupted.keras")


# --------------------------------------------------------------------------
# Exported .npz splits: the path of machines without TensorFlow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Synthetic pets exported at 32 px: the --out path of export-data."""
    root = tmp_path_factory.mktemp("npz")
    write_synthetic_pets(root / "pets", 24, seed=2)
    out = root / "pets32.npz"
    cli_main(
        ["export-data", "--data-dir", str(root / "pets"), "--image-size", "32"]
        + ["--out", str(out)]
    )
    return out


def npz_code(tmp_path, exported, *flags):
    return cli_main(
        ["train", "--data-npz", str(exported), "--image-size", "32"]
        + ["--batch-size", "4", "--output-dir", str(tmp_path), "--run-name", "npz"]
        + [*small_model_flags("unet"), *flags]
    )


def test_training_from_npz_on_the_current_backend(tmp_path, exported):
    assert (
        npz_code(tmp_path, exported, "--epochs", "1", "--class-weights", "1", "1", "3")
        == 0
    )
    run_dir = tmp_path / "npz"
    saved = files.read_json(os.path.join(run_dir, "config.json"))
    assert saved["examples"] == {"train": 8, "val": 4, "test": 12}
    assert float(history_rows(run_dir)[0]["loss"]) > 0
    assert "val_mean_iou" in history_rows(run_dir)[0]
    report = files.read_json(os.path.join(run_dir, "metrics.json"))
    assert report["images"] == 12 and "original_resolution" not in report


@pytest.mark.slow
def test_training_from_npz_without_tensorflow_on_two_jax_devices(tmp_path, exported):
    # The GPU machines' set-up: JAX, no TensorFlow, DataParallel over devices.
    flags = ["--data-npz", str(exported), "--image-size", "32", "--epochs", "2"]
    flags += ["--strategy", "mirrored", "--output-dir", str(tmp_path)]
    flags += [*small_model_flags("unet"), "--max-examples", "7"]  # odd test batch
    two_devices = {"XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=2")}
    uneven = run_without_tensorflow(
        "train_pet.py", *flags, "--batch-size", "3", **two_devices
    )
    assert uneven.returncode == 2
    assert "does not split evenly over 2 replicas" in uneven.stderr
    result = run_without_tensorflow(
        "train_pet.py", *flags, "--batch-size", "4", "--run-name", "jax", **two_devices
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # JAX's int64 warning (Keras's IoU metrics ask for int64) is filtered
    # around fit, not shown to the user.
    assert "Explicitly requested dtype int64" not in result.stderr
    assert "UserWarning" not in result.stderr
    saved = files.read_json(tmp_path / "jax" / "config.json")
    assert saved["versions"]["backend"] == "jax"
    assert "tensorflow" not in saved["versions"]
    assert (saved["strategy"], saved["replicas"]) == ("DataParallel", 2)
    assert len(history_rows(tmp_path / "jax")) == 2
    assert files.read_json(tmp_path / "jax" / "metrics.json")["images"] == 7
    keras.models.load_model(tmp_path / "jax" / "model.keras")


@pytest.mark.slow
def test_reading_images_without_tensorflow_points_to_the_npz_path(tmp_path):
    result = run_without_tensorflow(
        "train_pet.py",
        *("--synthetic", "8", "--output-dir", str(tmp_path)),
        *small_model_flags("unet"),
    )
    assert result.returncode == 2
    assert "needs TensorFlow, which is not installed" in result.stderr
    assert "--data-npz pets.npz" in result.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--image-size", "64"], "holds 32x32 images but --image-size is 64"),
        (["--binary"], "holds class 2, but a binary run"),
        (["--cache-dir", "cache"], "drop --cache-dir"),
    ],
)
def test_npz_problems_stop_with_a_clear_message(
    tmp_path, capsys, exported, flags, message
):
    assert npz_code(tmp_path, exported, *flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "npz").exists()


def test_missing_npz_files_are_named(tmp_path, capsys):
    assert npz_code(tmp_path, tmp_path / "none.npz") == 2
    error = capsys.readouterr().err
    assert "none_train.npz" in error and "none_test.npz" in error


def test_images_without_tensorflow_fail_before_the_model_is_built(
    tmp_path, monkeypatch
):
    # On JAX a model takes a minute to build here: the missing TensorFlow is
    # said first, TensorFlow hidden as where it is not installed.
    import importlib.util

    from tfseg.config import TrainConfig
    from tfseg.train import recipe

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "tensorflow" else find_spec(name, *args),
    )
    built = []
    monkeypatch.setattr(recipe, "load_or_build_model", built.append)
    config = TrainConfig(synthetic=8, output_dir=str(tmp_path), epochs=1)
    with pytest.raises(ValueError, match="needs TensorFlow, which is not installed"):
        recipe.train(config)
    assert built == []
