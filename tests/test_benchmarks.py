"""The GPU benchmark runs where the GPU machines run it: JAX, no TensorFlow."""

import json

import pytest

from tests.without_tensorflow import run as run_without_tensorflow


@pytest.mark.slow
def test_train_throughput_runs_without_tensorflow(tmp_path):
    result = run_without_tensorflow(
        "benchmarks/train_throughput.py",
        *("--models", "mobilenet_unet", "--precisions", "mixed_bfloat16"),
        *("--image-size", "32", "--batch-size", "2", "--steps", "2"),
        *("--epochs", "2", "--input-dtype", "uint8", "--steps-per-execution", "2"),
        *("--peak-tflops", "790", "--out", str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads((tmp_path / "results.json").read_text())
    assert row["model"] == "mobilenet_unet" and row["precision"] == "mixed_bfloat16"
    assert row["images_per_s"] > 0 and len(row["epoch_s"]) == 2
    assert 0.5 < row["gmacs"] / (0.59 * (32 / 128) ** 2) < 2  # MACs scale with area
    assert "| mobilenet_unet | mixed_bfloat16 | 2 |" in result.stdout
