"""What each ordinary mistake gives: one table, one row per mistake.

Each row: the command (`tfseg ...` arguments), the exit code, words the
message must hold, and a check of what is on disk afterwards. Rows were
each seen failing (a traceback, a silent wrong result or exit 0) before the
run folder had its own module.
"""

import dataclasses
import errno
import hashlib
import os
import shutil
import sys
import urllib.error
from collections.abc import Callable

import keras
import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY
from tests.conftest import small_model_flags
from tfseg import files
from tfseg import runs
from tfseg.cli import main as cli_main
from tfseg.console import is_noise
from tfseg.data import write_synthetic_pets

UNET = small_model_flags("unet")


def digest(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def folder_digests(folder):
    return {
        name: digest(os.path.join(folder, name))
        for name in sorted(os.listdir(folder))
        if os.path.isfile(os.path.join(folder, name))
    }


@dataclasses.dataclass
class Case:
    """`setup(w)` prepares the workspace `w` and returns the arguments of
    `tfseg`; `check(w)` asserts what is on disk afterwards."""

    name: str
    setup: Callable
    code: int
    words: tuple
    check: Callable = lambda w: None


class Workspace:
    """A temporary folder, a copy of a finished run in it, and helpers."""

    def __init__(self, root, finished, monkeypatch):
        self.root = root
        self.monkeypatch = monkeypatch
        self._finished = finished
        self.before = {}

    @property
    def run(self):
        """A copy of the finished run (made on first use)."""
        target = self.root / "runs" / "done"
        if not target.exists():
            shutil.copytree(self._finished, target)
            self.before = folder_digests(target)
        return str(target)

    def train(self, *flags, synthetic=True):
        data = TINY if synthetic else TINY[2:]  # without --synthetic N
        return ["train", *data, "--output-dir", str(self.root / "runs"), *flags]

    def new_runs(self):
        """Run folders in runs/ other than the copy and data caches."""
        folder = self.root / "runs"
        if not folder.exists():
            return []
        return [n for n in os.listdir(folder) if n != "done" and not n.startswith(".")]

    def image(self, name, size=(40, 60)):
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(len(name))
        Image.fromarray(rng.integers(0, 255, (*size, 3), np.uint8)).save(path)
        return str(path)

    def pets(self, count=12, name="pets"):
        folder = self.root / name
        write_synthetic_pets(folder, count, seed=3)
        return folder


def unchanged(w):
    assert folder_digests(w.run) == w.before


def nothing_new(w):
    assert w.new_runs() == []


# ---- setups ---------------------------------------------------------------


def int8_without_training_data(w):
    """A run whose data folder moved away: calibration cannot read it."""
    path = os.path.join(w.run, "config.json")
    record = files.read_json(path)
    record["config"].update(synthetic=0, data_dir=str(w.root / "moved"))
    files.write_json(path, record)
    w.before = folder_digests(w.run)
    return ["export", w.run, "--format", "tflite", "--quantize", "int8"]


def quantize_onnx(w):
    return ["export", w.run, "--format", "onnx", "--quantize", "int8"]


def evaluate_a_text_file(w):
    path = w.root / "notes.tflite"
    path.write_text("not a model")
    return ["evaluate", str(path), "--data-dir", str(w.pets())]


def evaluate_at_another_size(w):
    model = w.root / "copy.keras"
    shutil.copy(os.path.join(w.run, "model.keras"), model)
    return ["evaluate", str(model), "--data-dir", str(w.pets()), "--image-size", "64"]


def reuse_name(w):
    return w.train(*UNET, "--run-name", os.path.basename(w.run))


def tiny_split(w):
    return w.train(*UNET, "--max-examples", "2", "--run-name", "tiny")


def extend(w):
    return ["train", "--resume", w.run, "--epochs", "3"]


def extended(w):
    assert [int(r["epoch"]) for r in runs.history_rows(w.run)] == [0, 1, 2]
    assert files.read_json(os.path.join(w.run, "config.json"))["config"]["epochs"] == 3
    assert files.read_json(os.path.join(w.run, "state.json"))["epochs_done"] == 3


def resume_finished(w):
    return ["train", "--resume", w.run]


def resume_conflicting(w):
    flags = ["--loss", "dice", "--image-size", "48x64", "--crop", "32"]
    return ["train", "--resume", w.run, *flags]


def encoder_rate_from_scratch(w):
    return w.train(*UNET, "--encoder-lr-scale", "0.1")


def ema_of_one(w):
    return w.train(*UNET, "--ema", "1")


def no_network(w):
    from tfseg.data import sources

    # The network stands in: every download address is unreachable.
    w.monkeypatch.setattr(sources, "check_connection", lambda *a, **k: "offline")
    w.monkeypatch.setenv("TFDS_DATA_DIR", str(w.root / "tfds"))
    return ["train", "--output-dir", str(w.root / "runs"), *UNET, "--run-name", "x"]


def no_imagenet_file(w):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    w.monkeypatch.setattr(file_utils, "urlretrieve", offline)
    w.monkeypatch.setenv("KERAS_HOME", str(w.root / "keras_home"))
    return w.train("--model", "mobilenet_unet", "--alpha", "0.35", "--run-name", "x")


def break_files(w):
    folder = w.pets(16)
    images = sorted((folder / "images").iterdir())
    images[0].write_bytes(images[0].read_bytes()[:200])  # truncated JPEG
    images[1].unlink()  # a trimap without its image
    trimap = folder / "annotations" / "trimaps" / (images[2].stem + ".png")
    Image.fromarray(np.full((7, 9), 2, np.uint8)).save(trimap)  # wrong size
    return folder, [image.stem for image in images[:3]]


def broken_data(w):
    folder, _ = break_files(w)
    return w.train(*UNET, "--data-dir", str(folder), "--run-name", "x", synthetic=False)


def broken_data_skipped(w):
    folder, _ = break_files(w)
    flags = ["--data-dir", str(folder), "--run-name", "x", "--skip-bad"]
    return w.train(*UNET, *flags, "--epochs", "1", synthetic=False)


def skipped_recorded(w, count):
    saved = files.read_json(str(w.root / "runs" / "x" / "config.json"))
    assert sum(len(names) for names in saved["skipped"].values()) == count


def new_test_set(w):
    folder = w.pets(8, "new_test_set")
    names = sorted(p.stem for p in (folder / "images").iterdir())
    (folder / "annotations" / "trainval.txt").unlink()
    with open(folder / "annotations" / "test.txt", "w") as file:
        file.writelines(f"{name} 1 1 1\n" for name in names)
    return ["evaluate", w.run, "--data-dir", str(folder)]


def scored_separately(w):
    report = files.read_json(os.path.join(w.run, "metrics_new_test_set.json"))
    assert report["images"] == 8
    assert report["data"]["source"].endswith("new_test_set")
    unchanged_files = {"metrics.json", "metrics.md", "model.keras"}
    after = folder_digests(w.run)
    assert {n: after[n] for n in unchanged_files} == {
        n: w.before[n] for n in unchanged_files
    }


def output_dir_is_a_file(w):
    (w.root / "a_file").write_text("x")
    return ["train", *TINY, *UNET, "--output-dir", str(w.root / "a_file")]


def export_to_missing_folder(w):
    out = w.root / "missing" / "model.tflite"
    return ["export", w.run, "--format", "tflite", "--out", str(out)]


def predict_into_a_file(w):
    (w.root / "a_file").write_text("x")
    return ["predict", w.run, w.image("cat.png"), "--out", str(w.root / "a_file")]


def disk_full(w):
    run = w.run
    real_save = keras.Model.save

    def save(model, path, *args, **kwargs):
        if os.path.basename(path).startswith(".tmp_") and "last" in path:
            with open(path, "wb") as file:
                file.write(b"PK partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(model, path, *args, **kwargs)

    w.monkeypatch.setattr(keras.Model, "save", save)
    return ["train", "--resume", run, "--epochs", "3"]


def last_checkpoint_intact(w):
    assert not [n for n in os.listdir(w.run) if n.startswith(".tmp_")]
    assert digest(os.path.join(w.run, "last.keras")) == w.before["last.keras"]
    keras.models.load_model(os.path.join(w.run, "last.keras"))


def bad_size(w):
    return w.train("--model", "unet", "--image-size", "100", "--run-name", "x")


def unknown_model(w):
    return w.train("--model", "segformer", "--run-name", "x")


def missing_data_dir(w):
    flags = ["--data-dir", str(w.root / "nowhere"), "--run-name", "x"]
    return w.train(*UNET, *flags, synthetic=False)


def truncated_last(w):
    path = os.path.join(w.run, "last.keras")
    with open(path, "r+b") as file:
        file.truncate(1000)
    return ["train", "--resume", w.run, "--epochs", "3"]


def damaged_model_file(w):
    with open(os.path.join(w.run, "model.keras"), "r+b") as file:
        file.truncate(500)
    return ["evaluate", w.run]


def model_file_rebuilt(w):
    keras.models.load_model(os.path.join(w.run, "model.keras"))
    assert digest(os.path.join(w.run, "best.keras")) == w.before["best.keras"]


def savedmodel_onto_a_file(w):
    (w.root / "a_file").write_text("x")
    return ["export", w.run, "--format", "savedmodel", "--out", str(w.root / "a_file")]


def unscoped_compare_model_arg(w):
    return ["compare", "--models", "unet,pix2pix", "--model-arg", "base_filters=4"]


def export_data_size_zero(w):
    folder = w.pets(8)
    out = str(w.root / "pets.npz")
    return ["export-data", "--data-dir", str(folder), "--image-size", "0", "--out", out]


def misspelt_model_arg(w):
    return w.train("--model", "unet", "--model-arg", "base_filtres=8")


def negative_class_weights(w):
    return w.train(*UNET, "--class-weights", "-1", "0", "0")


def hosts_without_coordinator(w):
    return w.train(*UNET, "--hosts", "2", "--run-name", "x")


def hosts_on_tensorflow(w):
    flags = ["--hosts", "2", "--coordinator", "127.0.0.1:1", "--run-name", "x"]
    return w.train(*UNET, *flags)


def predict_some_broken(w):
    broken = w.root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a JPEG")
    images = [w.image("good.png"), str(broken), w.image("other.png")]
    return ["predict", w.run, *images, "--out", str(w.root / "out")]


def predicted_the_readable(w):
    assert sorted(os.listdir(w.root / "out")) == [
        f"{stem}_{kind}.png"
        for stem in ("good", "other")
        for kind in ("colour", "mask", "overlay")
    ]


def predict_same_names(w):
    images = [w.image("a/cat.png"), w.image("b/cat.png", size=(30, 20))]
    return ["predict", w.run, *images, "--out", str(w.root / "out")]


def demo_of_a_plain_folder(w):
    return ["demo", str(w.root)]


def demo_without_gradio(w):
    w.monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed
    return ["demo", w.run]


def distinct_outputs(w):
    sizes = []
    for name in ("a_cat_mask.png", "b_cat_mask.png"):
        with Image.open(w.root / "out" / name) as mask:
            sizes.append(mask.size)
    assert sizes == [(60, 40), (20, 30)]


CASES = [
    Case(
        "--encoder-lr-scale for a model trained from scratch",
        encoder_rate_from_scratch,
        2,
        ("--encoder-lr-scale 0.1", "from scratch", "Drop the flag"),
        nothing_new,
    ),
    Case(
        "--ema 1 (an average that never moves)",
        ema_of_one,
        2,
        ("--ema", "in [0, 1)", "0.99"),
        nothing_new,
    ),
    Case(
        "--run-name of an existing run",
        reuse_name,
        2,
        ("exists already", "--resume", "another --run-name"),
        unchanged,
    ),
    Case(
        "a training split smaller than one batch",
        tiny_split,
        2,
        ("2 example(s)", "fewer than one batch of 4", "--max-examples"),
        nothing_new,
    ),
    Case(
        "--resume RUN --epochs 3 extends a run",
        extend,
        0,
        ("extending", "from 2 to 3 epochs", "schedule is rebuilt"),
        extended,
    ),
    Case(
        "--resume of a finished run",
        resume_finished,
        2,
        ("is finished", "--epochs N"),
        unchanged,
    ),
    Case(
        "--resume with flags that differ from the run",
        resume_conflicting,
        2,
        (
            "--loss 'dice' (the run has 'ce+dice')",
            "--image-size 48x64 (the run has ",
            "--crop 32 (the run has none)",
        ),
        unchanged,
    ),
    Case(
        "no --data-dir and no network",
        no_network,
        2,
        ("--data-dir",),
        nothing_new,
    ),
    Case(
        "ImageNet weights absent, no network",
        no_imagenet_file,
        2,
        (
            "--encoder-weights none",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
            os.path.join("keras_home", "models"),
        ),
        nothing_new,
    ),
    Case(
        "several broken files, without --skip-bad",
        broken_data,
        2,
        ("3 broken example(s)", "--skip-bad"),
        nothing_new,
    ),
    Case(
        "several broken files, with --skip-bad",
        broken_data_skipped,
        0,
        ("skipped Abyssinian_1: image", "cannot be decoded", "is missing", "size"),
        lambda w: skipped_recorded(w, 3),
    ),
    Case(
        "evaluate on a new test set with only test.txt",
        new_test_set,
        0,
        ("Scored 8 images", "metrics_new_test_set.json"),
        scored_separately,
    ),
    Case(
        "--output-dir that is a file",
        output_dir_is_a_file,
        2,
        ("is a file",),
        lambda w: None,
    ),
    Case(
        "export --out in a missing folder",
        export_to_missing_folder,
        2,
        ("does not exist",),
        lambda w: None,
    ),
    Case(
        "predict --out that is a file",
        predict_into_a_file,
        2,
        ("is a file",),
        lambda w: None,
    ),
    Case(
        "disk full while saving a checkpoint",
        disk_full,
        2,
        ("No space left on device", "last.keras"),
        last_checkpoint_intact,
    ),
    Case(
        "an image size the model cannot take",
        bad_size,
        2,
        (
            "--image-size 100: unet (unet encoder) needs sides divisible by 16",
            "pass --image-size 96 or 112.",
        ),
        nothing_new,
    ),
    Case("an unknown model", unknown_model, 2, ("segformer", "unet"), nothing_new),
    Case(
        "a --data-dir that does not exist",
        missing_data_dir,
        2,
        ("nowhere",),
        nothing_new,
    ),
    Case(
        "a truncated last.keras, then --resume",
        truncated_last,
        2,
        ("last.keras", "damaged", "best.keras"),
    ),
    Case(
        "a damaged model.keras, then evaluate",
        damaged_model_file,
        0,
        ("written again from a checkpoint", "Scored"),
        model_file_rebuilt,
    ),
    Case(
        "export a SavedModel onto an existing file",
        savedmodel_onto_a_file,
        2,
        ("is not a SavedModel", "Pass a new path"),
    ),
    Case(
        "compare --model-arg without MODEL:",
        unscoped_compare_model_arg,
        2,
        ("expected MODEL:KEY=VALUE", "unet:base_filters=32"),
    ),
    Case(
        "export-data --image-size 0",
        export_data_size_zero,
        2,
        ("--image-size sides must be at least 32, not 0",),
        lambda w: not (w.root / "pets_train.npz").exists() or pytest.fail("written"),
    ),
    Case(
        "--model-arg base_filtres=8",
        misspelt_model_arg,
        2,
        ("base_filtres", "base_filters", "depth"),
        nothing_new,
    ),
    Case(
        "--class-weights -1 0 0",
        negative_class_weights,
        2,
        ("--class-weights must be positive",),
        nothing_new,
    ),
    Case(
        "--hosts 2 without --coordinator",
        hosts_without_coordinator,
        2,
        ("--hosts 2 needs --coordinator HOST:PORT",),
        nothing_new,
    ),
    Case(
        "--hosts 2 on the TensorFlow backend",
        hosts_on_tensorflow,
        2,
        ("KERAS_BACKEND=jax", "--strategy mirrored"),
        nothing_new,
    ),
    Case(
        "predict over a broken image among good ones",
        predict_some_broken,
        1,
        ("broken.jpg", "1 of 3 image(s) could not be read"),
        predicted_the_readable,
    ),
    Case(
        "predict two files of the same name",
        predict_same_names,
        0,
        ("a_cat_mask.png", "b_cat_mask.png"),
        distinct_outputs,
    ),
    Case(
        "export --quantize int8 when the run's data has moved",
        int8_without_training_data,
        2,
        ("--quantize int8 calibrates", "moved", "Pass --data-dir DIR"),
        unchanged,
    ),
    Case(
        "export --format onnx --quantize int8",
        quantize_onnx,
        2,
        ("--quantize int8 is for --format tflite",),
        unchanged,
    ),
    Case(
        "evaluate a text file named .tflite",
        evaluate_a_text_file,
        2,
        ("notes.tflite", "cannot be read as a TFLite model"),
    ),
    Case(
        "evaluate a model at another --image-size",
        evaluate_at_another_size,
        2,
        ("takes 32x32 images", "--image-size is 64:"),
    ),
    Case(
        "demo of a folder that is not a run",
        demo_of_a_plain_folder,
        2,
        ("is not a model tfseg can run", "a run folder"),
    ),
    Case(
        "demo without the demo extra",
        demo_without_gradio,
        2,
        ("needs Gradio", 'pip install "tfseg[demo]"'),
        unchanged,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_mistake_gets_a_clear_message(
    case,
    finished_run,
    tmp_path,
    monkeypatch,
    capfd,
):
    workspace = Workspace(tmp_path, finished_run, monkeypatch)
    argv = case.setup(workspace)
    code = cli_main(argv)
    output = capfd.readouterr()  # file descriptors: native libraries' lines too
    said = output.out + output.err
    assert code == case.code, said[-3000:]
    for words in case.words:
        assert words in said, (words, said[-3000:])
    assert "Traceback" not in said
    # No C++ or libjpeg noise (TensorFlow start-up, "Improper call to JPEG").
    assert not [line for line in said.splitlines() if is_noise(line)]
    case.check(workspace)


def test_relative_paths_are_saved_absolute(tmp_path, monkeypatch):
    # A run trained from one folder is evaluated and resumed from another.
    write_synthetic_pets(tmp_path / "pets", 16, seed=3)
    monkeypatch.chdir(tmp_path)
    flags = [*UNET, "--data-dir", "pets", "--image-size", "32", "--batch-size", "4"]
    assert cli_main(["train", *flags, "--epochs", "1", "--run-name", "rel"]) == 0
    saved = files.read_json(str(tmp_path / "runs" / "rel" / "config.json"))["config"]
    assert saved["data_dir"] == str(tmp_path / "pets")
    assert saved["output_dir"] == str(tmp_path / "runs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = str(tmp_path / "runs" / "rel")
    assert cli_main(["evaluate", run]) == 0
    assert cli_main(["train", "--resume", run, "--epochs", "2"]) == 0
    assert len(runs.history_rows(run)) == 2
