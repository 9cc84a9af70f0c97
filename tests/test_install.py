"""The installed `tfseg` command: a wheel in a fresh venv, run from elsewhere.

Not editable and not from the source tree: what a user gets from
`pip install .` or a wheel. The venv sees the packages of the interpreter
running the tests, whatever it is (the system's, a venv's or conda's), so
nothing is downloaded: `--system-site-packages` would reach only the base
interpreter's, not an outer venv's (`outer_packages`).
"""

import os
import pathlib
import subprocess
import sys
import time

import pytest

from tests.conftest import PROJECT_ROOT
from tests.conftest import TINY
from tests.conftest import run
from tests.conftest import small_model_flags
from tfseg import files

SUBCOMMANDS = (
    "train",
    "evaluate",
    "predict",
    "export",
    "demo",
    "compare",
    "verify-data",
    "export-data",
)


@pytest.mark.slow
def test_the_wheel_imports_its_own_copy(installed):
    _, env, work, python = installed
    result = run([python, "-c", "import tfseg; print(tfseg.__file__)"], work, env)
    assert str(pathlib.Path(python).parents[1]) in result.stdout  # the venv
    assert str(PROJECT_ROOT) not in result.stdout


@pytest.mark.slow
def test_help_lists_every_command_at_once(installed):
    tfseg, env, work, _ = installed
    start = time.perf_counter()
    result = run([tfseg, "--help"], work, env)
    seconds = time.perf_counter() - start
    for command in SUBCOMMANDS:
        assert command in result.stdout
    # Generous bound for a loaded 2-core machine; it takes about 0.3 s.
    # Help imports neither Keras nor TensorFlow (checked exactly below).
    assert seconds < 5, seconds


def test_help_and_argument_errors_import_no_tensorflow_or_keras():
    code = (
        "import sys\n"
        "from tfseg.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['train', '--epochs', 'x'],\n"
        "             ['demo', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'gradio') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "HEAVY []" in result.stdout, result.stdout[-500:] + result.stderr[-2000:]
    assert "argument --epochs: invalid int value: 'x'" in result.stderr


@pytest.mark.slow
def test_train_from_the_installed_command(installed):
    tfseg, env, work, _ = installed
    env = {k: v for k, v in env.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    flags = [*TINY, *small_model_flags("unet"), "--epochs", "1", "--run-name", "w"]
    result = run([tfseg, "train", *flags], work, env)
    assert os.path.isfile(work / "runs" / "w" / "model.keras")
    assert files.read_json(str(work / "runs" / "w" / "metrics.json"))["images"] > 0
    # TensorFlow's C++ start-up lines are hidden unless asked for.
    for noise in ("oneDNN custom operations", "cpu_feature_guard", "absl::"):
        assert noise not in result.stdout + result.stderr
    # `tfseg compare` from the installed command: tests/test_compare.py.
