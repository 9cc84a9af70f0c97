"""What a person still trips over: one test per row of the issue, each
seen failing before its fix. A mistake gets one clear line and a non-zero
exit (2 for unusable input), never a traceback."""

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PROJECT_ROOT
from tests.conftest import TINY
from tests.conftest import copy_run
from tests.conftest import small_model_flags
from tfseg import files
from tfseg import runs
from tfseg.cli import main as cli_main
from tfseg.config import TrainConfig
from tfseg.data import write_synthetic_pets

UNET = small_model_flags("unet")


def run_tfseg(*argv, env=None, close_stdout=False, timeout=300):
    """`python -m tfseg ARGV` in a new process: `(exit code, stdout, stderr)`.

    With `close_stdout`, its standard output is a pipe whose reader has
    gone before it writes (`tfseg ... | head` once head has exited)."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "tfseg", *argv],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if close_stdout:
        process.stdout.close()
        with process.stderr:
            err = process.stderr.read()
        process.wait(timeout)
        return process.returncode, "", err
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def said(capfd):
    output = capfd.readouterr()
    return output.out + output.err


def refused(capfd, argv):
    """The words of a command that argparse refuses (exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    return said(capfd)


def pets(tmp_path, count=8, name="pets"):
    folder = tmp_path / name
    write_synthetic_pets(folder, count, seed=3)
    return folder


# ---- 1. abbreviations and misspelt flags --------------------------------


def test_a_prefix_of_a_flag_is_refused_with_the_flag_suggested(capfd):
    words = refused(capfd, ["train", "--epoch", "3"])
    assert "usage: tfseg train" in words
    assert "unrecognized arguments: --epoch 3" in words
    assert "did you mean --epochs?" in words


def test_a_misspelt_flag_gets_the_commands_usage_and_a_suggestion(capfd):
    words = refused(capfd, ["train", "--epocs", "1"])
    assert "usage: tfseg train" in words
    assert "did you mean --epochs?" in words
    words = refused(capfd, ["evaluate", "run", "--dat-dir", "x"])
    assert "usage: tfseg evaluate" in words
    assert "did you mean --data-dir?" in words


# ---- 2. a user's TF_CPP_MIN_LOG_LEVEL -----------------------------------


@pytest.mark.parametrize(
    "level, verbose, quiet",
    [("3", False, True), ("1", False, True), ("0", False, False), ("3", True, False)],
)
def test_a_users_log_level_of_one_or_more_keeps_the_filter(
    monkeypatch, level, verbose, quiet
):
    from tfseg.cli import QUIET
    from tfseg.cli import wants_quiet

    monkeypatch.delenv(QUIET, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    assert wants_quiet(verbose) is quiet
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == level  # the user's, kept


# ---- 3. --version -------------------------------------------------------


def test_version_names_tfseg_its_libraries_and_the_backend(capfd, monkeypatch):
    import tfseg

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--version"])
    assert exit_info.value.code == 0
    words = said(capfd)
    assert f"tfseg {tfseg.__version__}" in words
    for package, name in (("keras", "Keras"), ("tensorflow", "TensorFlow")):
        assert f"{name} {importlib.metadata.version(package)}" in words
    assert f"JAX {importlib.metadata.version('jax')}" in words
    assert "backend jax" in words


def test_config_json_records_tfseg_version():
    import tfseg
    from tfseg.train.recipe import versions

    recorded = versions()
    assert recorded["tfseg"] == tfseg.__version__
    assert recorded["keras"] == importlib.metadata.version("keras")


# ---- 4. a closed standard output ----------------------------------------


def test_a_command_into_a_closed_pipe_exits_quietly(tmp_path):
    code, _, err = run_tfseg("verify-data", str(pets(tmp_path)), close_stdout=True)
    assert code == 0, err
    assert err == ""


def test_evaluate_into_a_closed_pipe_still_writes_its_report(finished_run, tmp_path):
    out = tmp_path / "r.json"
    code, _, err = run_tfseg(
        "evaluate", finished_run, "--out", str(out), close_stdout=True
    )
    assert code == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err
    assert files.read_json(str(out))["images"] > 0


# ---- 5. a Keras backend that is not installed ---------------------------


def test_a_backend_not_installed_is_one_line(tmp_path):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here")
    code, out, err = run_tfseg(
        "evaluate", str(tmp_path), env={"KERAS_BACKEND": "torch"}
    )
    assert code == 2
    assert "Traceback" not in err
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1, lines
    assert "torch" in lines[0] and "pip install torch" in lines[0]
    assert "KERAS_BACKEND=tensorflow" in lines[0]


def test_help_needs_no_backend():
    code, out, _ = run_tfseg("train", "--help", env={"KERAS_BACKEND": "torch"})
    assert code == 0 and "--epochs" in out


# ---- 18. the flag on the command line, the argument in Python -----------


def test_broken_data_names_the_flag_or_the_argument(tmp_path, capfd):
    from tfseg.data.dataset import DataError

    error = DataError({"cat_1": "image file is missing"})
    assert "skip_bad=True" in str(error) and "--skip-bad" not in str(error)
    folder = pets(tmp_path, 12)
    next((folder / "images").iterdir()).write_bytes(b"\xff\xd8\xff broken")
    flags = ["--data-dir", str(folder), "--output-dir", str(tmp_path / "runs")]
    assert cli_main(["train", *TINY[2:], *UNET, *flags]) == 2
    words = said(capfd)
    assert "--skip-bad" in words and "skip_bad" not in words


# ---- 6. paths that do not exist, or are the wrong kind ------------------


def data_dir_missing(tmp_path):
    flags = ["--data-dir", str(tmp_path / "no" / "such"), *TINY[2:], *UNET]
    return ["train", *flags, "--output-dir", str(tmp_path / "runs")]


def resume_missing(tmp_path):
    return ["train", "--resume", str(tmp_path / "runs" / "nonexistent")]


def evaluate_missing(tmp_path):
    return ["evaluate", str(tmp_path / "runs" / "nothere")]


def export_missing(tmp_path):
    return ["export", str(tmp_path / "runs" / "nothere"), "--format", "tflite"]


def data_dir_is_npz(tmp_path):
    path = tmp_path / "pets.npz"
    np.savez(path, images=np.zeros(1))
    flags = ["--data-dir", str(path), *TINY[2:], *UNET]
    return ["train", *flags, "--output-dir", str(tmp_path / "runs")]


@pytest.mark.parametrize(
    "setup, words",
    [
        (data_dir_missing, ("such' does not exist",)),
        (resume_missing, ("nonexistent' does not exist", "a run folder")),
        (evaluate_missing, ("nothere' does not exist", "a run folder")),
        (export_missing, ("nothere' does not exist", "a run folder")),
        (data_dir_is_npz, ("pets.npz' is a file of exported splits", "--data-npz")),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_a_path_that_cannot_work_is_named_first(tmp_path, capfd, setup, words):
    assert cli_main(setup(tmp_path)) == 2
    first = said(capfd).strip().splitlines()[-1]
    for word in words:
        assert word in first, first
    assert "--out" not in first and "--data-dir DIR" not in first
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")


# ---- 7. one naming rule for export-data and --data-npz ------------------


def test_one_exported_split_is_found_by_data_npz(tmp_path, capfd):
    from tfseg.data.loading import load_splits

    out = tmp_path / "f.npz"
    argv = ["export-data", "--data-dir", str(pets(tmp_path)), "--image-size", "32"]
    assert cli_main([*argv, "--split", "train", "--out", str(out)]) == 0
    assert (tmp_path / "f_train.npz").is_file() and not out.exists()
    config = TrainConfig(data_npz=str(out), image_size=32)
    assert len(load_splits(config, splits=["train"])["train"]) > 0
    # One split's own file given: the files looked for, and what to pass.
    config = TrainConfig(data_npz=str(tmp_path / "f_train.npz"), image_size=32)
    with pytest.raises(ValueError) as error:
        load_splits(config, splits=["train"])
    assert "f_train_train.npz" in str(error.value)
    assert f"pass {str(out)!r}" in str(error.value)


# ---- 8. the .npz format version is checked ------------------------------


def test_an_npz_of_another_format_version_is_refused(tmp_path):
    from tfseg.data.arrays import NPZ_FORMAT_VERSION
    from tfseg.data.arrays import load_npz

    fields = dict(
        images=np.zeros((1, 32, 32, 3), np.uint8),
        masks=np.zeros((1, 32, 32, 1), np.uint8),
        names=np.array(["cat_1"]),
        breed_ids=np.zeros(1, np.int32),
        species=np.zeros(1, np.int32),
    )
    np.savez(tmp_path / "ok.npz", **fields, format_version=NPZ_FORMAT_VERSION)
    assert len(load_npz(tmp_path / "ok.npz")) == 1
    np.savez(tmp_path / "new.npz", **fields, format_version=NPZ_FORMAT_VERSION + 1)
    with pytest.raises(ValueError) as error:
        load_npz(tmp_path / "new.npz")
    message = str(error.value)
    assert f"version {NPZ_FORMAT_VERSION + 1}" in message
    assert f"reads version {NPZ_FORMAT_VERSION}" in message
    assert "export-data" in message


# ---- 9. plain-encoder arguments with a pretrained encoder ---------------


def test_plain_encoder_arguments_with_a_pretrained_encoder_are_refused():
    from tfseg.models import create_model

    with pytest.raises(ValueError) as error:
        create_model("unet", encoder="mobilenet_v2", depth=3, base_filters=8)
    message = str(error.value)
    assert "depth=3 and base_filters=8" in message and "ignored" in message
    assert "decoder_filters" in message and "alpha" in message
    with pytest.raises(ValueError, match="depth=5"):
        create_model("unet", encoder="resnet50", depth=5)
    # What applies is still taken.
    model = create_model(
        "unet",
        input_shape=(32, 32, 3),
        encoder="mobilenet_v2",
        alpha=0.35,
        batch_norm=True,
        decoder_filters=(8, 8, 8, 8, 8),
    )
    assert model.output_shape == (None, 32, 32, 3)


# ---- 10. a phone photo's EXIF orientation -------------------------------


def phone_photo(path, orientation):
    """A JPEG stored 40 px wide and 20 high, red on the left and blue on the
    right, whose EXIF orientation turns it a quarter (6: clockwise)."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20, 0] = 255
    pixels[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, "JPEG", quality=95, exif=exif)
    return str(path)


def test_a_phone_photo_is_read_upright(finished_run, tmp_path, capfd):
    from tfseg.demo.logic import read_photo
    from tfseg.inference import read_image

    clockwise = read_image(phone_photo(tmp_path / "six.jpg", 6))
    assert clockwise.shape == (40, 20, 3)
    assert clockwise[5, 10, 0] > 200 and clockwise[35, 10, 2] > 200  # red on top
    anticlockwise = read_image(phone_photo(tmp_path / "eight.jpg", 8))
    assert anticlockwise[5, 10, 2] > 200 and anticlockwise[35, 10, 0] > 200
    with pytest.raises(ValueError, match="six.jpg is 20 x 40 = "):
        read_photo(str(tmp_path / "six.jpg"), max_pixels=100)
    assert read_photo(str(tmp_path / "six.jpg")).shape == (40, 20, 3)
    out = tmp_path / "out"
    assert (
        cli_main(
            ["predict", finished_run, str(tmp_path / "six.jpg"), "--out", str(out)]
        )
        == 0
    )
    with Image.open(out / "six_mask.png") as mask:
        assert mask.size == (20, 40)


# ---- 11. compare's own flags inside --train-args ------------------------


def test_compare_refuses_its_own_flags_in_train_args(tmp_path, capfd):
    argv = ["compare", "--models", "unet", "--model-arg", "unet:base_filters=4"]
    argv += [*TINY, "--epochs", "1", "--output-dir", str(tmp_path / "cmp")]
    elsewhere = str(tmp_path / "elsewhere")
    code = cli_main([*argv, "--train-args", "--output-dir", elsewhere, "--epochs=2"])
    words = said(capfd)
    assert code == 2, words[-2000:]
    assert "--train-args holds flags that compare sets itself" in words
    assert "--output-dir (compare puts each model's run in" in words
    assert "--epochs (compare gives it to every model" in words
    assert not (tmp_path / "cmp").exists() and not os.path.exists(elsewhere)


def test_a_model_without_scores_is_never_ok(tmp_path):
    from tfseg.compare.measure import summarize
    from tfseg.compare.running import Entry

    row = summarize(Entry("unet"), str(tmp_path), "ok", 100.0, 5.0, 32)
    assert row["status"] == "failed"
    assert "no test report" in row["error"] and "metrics.json" in row["error"]


# ---- 12. an image size no memory holds ----------------------------------


def test_an_image_size_beyond_memory_is_refused_at_once():
    with pytest.raises(ValueError) as error:
        TrainConfig(image_size=100000, synthetic=20).validate()
    message = str(error.value)
    assert "--image-size sides must be at most 2048, not 100000" in message
    # 100000 ** 2 pixels of 4 bytes: 37.3 GiB an example, 745.1 GiB for 20.
    assert "37.3 GiB each" in message and "745.1 GiB for 20 examples" in message
    TrainConfig(image_size=2048).validate()


# ---- 13. a report or an export that cannot be written -------------------


def test_evaluate_prints_the_scores_when_the_report_cannot_be_written(
    finished_run, tmp_path, capfd
):
    run_dir = copy_run(finished_run, tmp_path)
    os.remove(os.path.join(run_dir, "metrics.json"))
    os.mkdir(os.path.join(run_dir, "metrics.json"))  # no write lands there
    assert cli_main(["evaluate", run_dir]) == 2
    output = capfd.readouterr()
    assert "| training resolution |" in output.out  # the scores
    message = output.err.strip().splitlines()[-1]
    assert "Cannot write" in message and "metrics.json" in message
    assert "--out FILE.json" in message
    assert "Traceback" not in output.out + output.err


def test_export_into_a_read_only_folder_is_refused_before_converting(
    finished_run, tmp_path, capfd, monkeypatch
):
    from tfseg.deploy import export

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # Root writes through any mode bits: the folder is made read-only here.
    monkeypatch.setattr(
        os, "access", lambda path, mode: real_access(path, mode) and path != str(locked)
    )

    def convert(*args, **kwargs):
        raise AssertionError("converted before the --out check")

    monkeypatch.setattr(export, "tflite_model", convert)
    out = str(locked / "model.tflite")
    code = cli_main(["export", finished_run, "--format", "tflite", "--out", out])
    words = said(capfd)
    assert code == 2, words[-2000:]
    assert f"--out {out!r}: {str(locked)!r} is not writable" in words


# ---- 14. two runs started in the same second ----------------------------


def test_runs_started_in_the_same_second_get_distinct_folders(
    tmp_path, monkeypatch, capfd
):
    import datetime
    import types

    from tfseg.train import recipe

    class SameSecond(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2027, 1, 2, 3, 4, 5)

    monkeypatch.setattr(recipe, "datetime", types.SimpleNamespace(datetime=SameSecond))
    real_create = runs.create_run

    def racing(run_dir, *args, **kwargs):
        # A third run, started in the same second too, makes its folder
        # between this run's plan and its own.
        os.makedirs(f"{run_dir}_2", exist_ok=True)
        return real_create(run_dir, *args, **kwargs)

    argv = ["train", *TINY, *UNET, "--epochs", "1", "--output-dir", str(tmp_path)]
    assert cli_main(argv) == 0
    monkeypatch.setattr(runs, "create_run", racing)
    assert cli_main(argv) == 0, said(capfd)[-2000:]
    name = "20270102-030405_unet"
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith(".")) == [
        name,
        f"{name}_2",
        f"{name}_3",
    ]
    assert os.path.isfile(tmp_path / f"{name}_3" / "metrics.json")
    # A name the user gave is never numbered.
    assert cli_main([*argv, "--run-name", name]) == 2
    assert "exists already" in said(capfd)


# ---- 15. predict a folder -----------------------------------------------


def test_predict_of_a_folder_predicts_its_images(finished_run, tmp_path, capfd):
    pics = tmp_path / "pics"
    (pics / "deeper").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png", "deeper/c.png"):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), np.uint8)).save(pics / name)
    (pics / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert cli_main(["predict", finished_run, str(pics), "--out", str(out)]) == 0
    assert sorted(n for n in os.listdir(out) if n.endswith("_mask.png")) == [
        "a_mask.png",
        "b_mask.png",
    ]
    argv = ["predict", finished_run, str(pics), "--recursive", "--out", str(out)]
    assert cli_main(argv) == 0
    assert (out / "c_mask.png").is_file()
    (tmp_path / "empty").mkdir()
    empty = ["predict", finished_run, str(tmp_path / "empty"), "--out", str(out)]
    assert cli_main(empty) == 2
    words = said(capfd)
    assert "empty' holds no image file" in words and "--recursive" in words
    assert "Is a directory" not in words


# ---- 16. interrupted.keras after the run has finished -------------------


def test_a_finished_run_keeps_no_interrupted_checkpoint(finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    interrupted = os.path.join(run_dir, runs.INTERRUPTED)
    shutil.copyfile(os.path.join(run_dir, runs.LAST), interrupted)  # a Ctrl-C's
    assert cli_main(["train", "--resume", run_dir, "--epochs", "3"]) == 0
    assert files.read_json(os.path.join(run_dir, runs.STATE))["finished"]
    assert not os.path.exists(interrupted)


# ---- 17. an image under another ending ----------------------------------


def test_verify_data_names_the_file_that_is_there_instead(tmp_path, capfd):
    from tfseg.data.verify import verify_folder

    folder = pets(tmp_path)
    jpeg = folder / "images" / "Abyssinian_1.jpg"
    with Image.open(jpeg) as picture:
        picture.save(folder / "images" / "Abyssinian_1.png")
    jpeg.unlink()
    assert verify_folder(str(folder)) > 0
    words = said(capfd)
    assert "Abyssinian_1.jpg' is missing (Abyssinian_1.png is there" in words


# ---- 19. only the split lists a command needs ---------------------------


def test_evaluate_of_a_test_split_reads_no_trainval_list(finished_run, tmp_path, capfd):
    folder = pets(tmp_path, 8)
    (folder / "annotations" / "trainval.txt").write_text("not a list line\n")
    argv = ["evaluate", finished_run, "--data-dir", str(folder)]
    argv += ["--out", str(tmp_path / "r.json")]
    assert cli_main(argv) == 0, said(capfd)[-2000:]
    listed = (folder / "annotations" / "test.txt").read_text().split()
    assert files.read_json(str(tmp_path / "r.json"))["images"] == len(listed) // 4
    # The training splits still need it, and say where it is broken.
    from tfseg.data.layout import OxfordPetFolder

    with pytest.raises(ValueError, match="trainval.txt, line 1"):
        OxfordPetFolder(folder).splits(wanted=["train"])


# ---- 20. one report name for one export ---------------------------------


def test_one_export_scored_either_way_gets_one_report_name(tmp_path):
    from tfseg.evaluate import format_report
    from tfseg.evaluate import owning_run
    from tfseg.evaluate import report_path

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    files.write_json(run_dir / "config.json", {})
    exported, data = str(run_dir / "model_int8.tflite"), str(tmp_path / "pets")
    expected = str(run_dir / "metrics_model_int8.tflite_pets.json")
    assert report_path(*owning_run(str(run_dir), exported), data) == expected
    assert report_path(*owning_run(exported), data) == expected  # `evaluate FILE`
    assert report_path(*owning_run(exported)) == str(
        run_dir / "metrics_model_int8.tflite.json"
    )
    loose = str(tmp_path / "model.tflite")  # in no run: beside it
    assert report_path(*owning_run(loose), data, "flip") == (
        f"{loose}.tta-flip.metrics.json"
    )
    scores = dict(pixel_accuracy=0.5, mean_iou=0.5, iou=[0.5] * 3, dice=[0.5] * 3)
    report = {
        "images": 7,
        "class_names": ["pet", "background", "border"],
        "training_resolution": scores,
        "data": {"source": data, "split": "test"},
        "model": {"path": exported, "runtime": "ai-edge-litert 2.0"},
    }
    assert format_report(report).startswith(
        f"Scored 7 images of the test split of {data} with model_int8.tflite "
        "(ai-edge-litert 2.0)."
    )


def test_a_model_file_in_a_run_folder_is_scored_as_the_runs(finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    exported = os.path.join(run_dir, "copy.keras")
    shutil.copyfile(os.path.join(run_dir, "model.keras"), exported)
    assert cli_main(["evaluate", exported]) == 0  # no --data-dir: the run's data
    report = files.read_json(os.path.join(run_dir, "metrics_copy.keras.json"))
    own = files.read_json(os.path.join(run_dir, "metrics.json"))
    assert report["images"] == own["images"]
    assert report["data"]["source"] == own["data"]["source"]


# ---- 21. libraries' warnings, filtered where they are raised ------------


def test_onnx_export_raises_no_library_warning(finished_run, tmp_path):
    pytest.importorskip("tf2onnx")
    # Warnings are errors here (pyproject), with no filter for this test.
    out = str(tmp_path / "model.onnx")
    assert cli_main(["export", finished_run, "--format", "onnx", "--out", out]) == 0
    assert os.path.isfile(out)
