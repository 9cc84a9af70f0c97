"""`python -m tfseg compare` on small models and synthetic data."""

import argparse
import csv
import os
import subprocess

import pytest

from tfseg.cli import main as cli_main
from tfseg.cli.parser import add_compare_arguments
from tfseg.compare import running
from tfseg.compare.report import plot_predictions
from tfseg.config import TrainConfig
from tfseg.data import export_npz
from tfseg.data import load_oxford_pet
from tfseg.data import write_synthetic_pets

FLAGS = [
    "--models", "unet,fcn8s,pix2pix", "--synthetic", "16", "--image-size", "64",
    "--epochs", "2", "--batch-size", "4",
    "--model-arg", "unet:base_filters=4",
    "--model-arg", "fcn8s:fc_width=-1",  # deliberately broken
    "--model-arg", "pix2pix:base_filters=4",
    "--train-args", "--encoder-weights", "none",
]  # fmt: skip


# Every model trains in a subprocess.
pytestmark = pytest.mark.slow


def read_rows(output_dir):
    with open(output_dir / "comparison.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def comparison(installed, tmp_path_factory):
    """One comparison, run by the `tfseg` command of the installed wheel (its
    trainings import the wheel's tfseg, from any folder)."""
    tfseg, env, _, _ = installed
    output_dir = tmp_path_factory.mktemp("comparison")
    result = subprocess.run(
        [tfseg, "compare", "--output-dir", str(output_dir), *FLAGS],
        cwd=output_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.returncode, output_dir


def test_every_output_file_exists_and_parses(comparison):
    code, output_dir = comparison
    assert code == 0
    rows = read_rows(output_dir)
    assert [(row["model"], row["status"]) for row in rows] == [
        ("unet", "ok"),
        ("fcn8s", "failed"),
        ("pix2pix", "ok"),
    ]
    markdown = (output_dir / "comparison.md").read_text()
    assert markdown.count("\n| unet |") == 1 and "Failed:" in markdown
    for picture in ("comparison.png", "predictions.png"):
        assert (output_dir / picture).read_bytes()[:4] == b"\x89PNG"


def test_rows_hold_size_speed_and_quality(comparison):
    _, output_dir = comparison
    for row in read_rows(output_dir):
        if row["status"] != "ok":
            continue
        assert int(row["parameters"]) > 0 and float(row["gmacs"]) > 0
        assert float(row["train_images_per_s"]) > 0
        assert float(row["latency_ms_batch1"]) > 0
        assert float(row["images_per_s_batch32"]) > 0
        assert float(row["peak_memory_mib"]) > 100
        assert 0 <= float(row["mean_iou"]) <= 1
        assert row["backend"] and row["precision"] == "float32" and row["device"]


def test_a_broken_model_is_recorded_with_its_error(comparison):
    _, output_dir = comparison
    failed = read_rows(output_dir)[1]
    assert "`fc_width` must be a positive integer" in failed["error"]
    assert os.path.isfile(output_dir / "runs" / "fcn8s.log")


def test_resume_keeps_the_models_already_done(comparison, capsys):
    code, output_dir = comparison
    before = {row["model"]: row for row in read_rows(output_dir)}
    assert (
        cli_main(["compare", "--output-dir", str(output_dir), "--resume", *FLAGS]) == 0
    )
    output = capsys.readouterr().out
    assert "unet: done before, kept" in output
    assert "pix2pix: done before, kept" in output
    assert "fcn8s: training" in output  # the failed one is tried again
    after = {row["model"]: row for row in read_rows(output_dir)}
    assert after["unet"]["mean_iou"] == before["unet"]["mean_iou"]
    assert after["unet"]["peak_memory_mib"] == before["unet"]["peak_memory_mib"]


def test_unknown_models_are_refused_before_any_training(tmp_path, capsys):
    assert (
        cli_main(
            ["compare", "--models", "unet,segformer", "--output-dir", str(tmp_path)]
        )
        == 2
    )
    assert "Unknown model(s) ['segformer']" in capsys.readouterr().err


def test_exported_splits_reach_every_training_and_the_picture(tmp_path):
    write_synthetic_pets(tmp_path / "pets", 12, seed=1)
    splits = load_oxford_pet(str(tmp_path / "pets"), 32)
    for split, examples in splits.items():
        export_npz(examples, tmp_path / f"pets_{split}.npz")
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    args = parser.parse_args(
        ["--models", "unet", "--image-size", "32", "--data-npz"]
        + [str(tmp_path / "pets.npz")]
    )
    command = running.train_command(running.Entry("unet"), args, str(tmp_path))
    assert command[command.index("--data-npz") + 1] == str(tmp_path / "pets.npz")
    # The picture reads the test split as the first finished run did.
    run_config = TrainConfig(data_npz=str(tmp_path / "pets.npz"), image_size=32)
    test = running._test_split(run_config)
    assert list(test.names) == list(splits["test"].names)


def test_runs_take_trains_own_size_and_batch_unless_given():
    # Not passed, each `tfseg train` picks them: a described folder's own
    # shape and batch (tfseg.data.sizing, DESCRIBED_DATA_DEFAULTS), 128 px
    # and 16 for the pets; passed, every model gets them.
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    plain = parser.parse_args(["--models", "unet", "--data-dir", "camvid"])
    command = running.train_command(running.Entry("unet"), plain, "runs")
    assert "--image-size" not in command and "--batch-size" not in command
    assert command[command.index("--epochs") + 1] == "10"  # compare's own
    # With a time budget, the budget sets each run's length: --epochs would
    # cap it (a 10-minute CamVid budget ended after 10 epochs, 5 minutes).
    budgeted = parser.parse_args(["--models", "unet", "--time-budget", "10"])
    command = running.train_command(running.Entry("unet"), budgeted, "runs")
    assert "--epochs" not in command
    assert command[command.index("--time-budget") + 1] == "10.0"
    capped = parser.parse_args(
        ["--models", "unet", "--time-budget", "10"] + ["--epochs", "30"]
    )
    command = running.train_command(running.Entry("unet"), capped, "runs")
    assert command[command.index("--epochs") + 1] == "30"
    given = parser.parse_args(
        ["--models", "unet", "--image-size", "224x320", "--batch-size", "4"]
    )
    command = running.train_command(running.Entry("unet"), given, "runs")
    assert command[command.index("--image-size") + 1] == "224x320"
    assert command[command.index("--batch-size") + 1] == "4"
    # Whole frames, where a described folder would train on windows.
    whole = parser.parse_args(["--models", "unet", "--crop", "none"])
    command = running.train_command(running.Entry("unet"), whole, "runs")
    assert command[command.index("--crop") + 1] == "none"
    assert "--crop" not in running.train_command(running.Entry("unet"), plain, "r")


def test_the_picture_reads_the_test_split_as_the_runs_did(finished_run, tmp_path):
    # compare passes no --image-size for a described folder (each run finds
    # its own): the picture must take the size, data and classes from the
    # first finished run, not from compare's flags (a CamVid comparison
    # crashed here after training five models).
    from PIL import Image

    run_root, label = os.path.split(finished_run)
    rows = [{"status": "ok", "model": label, "encoder": "default"}]
    path = tmp_path / "predictions.png"
    plot_predictions(rows, run_root, running._test_split, str(path))
    with Image.open(path) as picture:
        assert picture.width > 0 and picture.height > 0


def test_resuming_with_other_settings_names_them_as_the_flags_take_them(tmp_path):
    from tfseg import runs

    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    common = ["--models", "unet", "--output-dir", str(tmp_path), "--resume"]
    running.check_settings(parser.parse_args(common))  # writes compare.json
    again = parser.parse_args([*common, "--crop", "none", "--image-size", "224x320"])
    with pytest.raises(runs.RunError) as refused:
        running.check_settings(again)
    message = str(refused.value)
    assert "--crop none (was not given)" in message, message
    assert "--image-size 224x320 (was not given)" in message, message
