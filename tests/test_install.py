"""The installed `tfseg` command: a wheel in a fresh venv, run from elsewhere.

Not editable and not from the source tree: what a user gets from
`pip install .` or a wheel. The venv sees the packages of the interpreter
running the tests, whatever it is (the system's, a venv's or conda's), so
nothing is downloaded: `--system-site-packages` would reach only the base
interpreter's, not an outer venv's (`outer_packages`).
"""

import os
import pathlib
import site
import subprocess
import sys
import sysconfig
import time

import pytest

from tests.conftest import PROJECT_ROOT
from tests.conftest import TINY
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


def run(command, cwd, env, timeout=600):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr)
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`(tfseg executable, environment, working folder)` of a wheel
    installed into a new venv."""
    root = tmp_path_factory.mktemp("install")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["-q", "-w", str(root / "dist"), str(PROJECT_ROOT)],
        root,
        env,
    )
    (wheel,) = (root / "dist").glob("tfseg-*.whl")
    run([sys.executable, "-m", "venv", str(root / "venv")], root, env)
    python = str(root / "venv" / "bin" / "python")
    outer_packages(python, env)
    run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        root,
        env,
    )
    work = root / "work"
    work.mkdir()
    return str(root / "venv" / "bin" / "tfseg"), env, work, python


def outer_packages(python, env):
    """Lets the venv of `python` import the packages of this interpreter.

    A `.pth` file in the venv lists this interpreter's package folders as
    plain paths: they are appended to `sys.path`, after the venv's own (so
    the wheel's tfseg comes first), and their own `.pth` files are not run
    (so an editable install of this checkout stays out).
    """
    paths = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    paths.update(site.getsitepackages() + [site.getusersitepackages()])
    found = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        ".",
        env,
    )
    target = pathlib.Path(found.stdout.strip()) / "tfseg_test_outer_packages.pth"
    target.write_text(
        "".join(f"{path}\n" for path in sorted(paths) if os.path.isdir(path))
    )


@pytest.mark.slow
def test_the_wheel_imports_its_own_copy(installed):
    _, env, work, python = installed
    result = run([python, "-c", "import tfseg; print(tfseg.__file__)"], work, env)
    assert str(work.parent / "venv") in result.stdout
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
def test_train_and_compare_from_the_installed_command(installed):
    tfseg, env, work, _ = installed
    env = {k: v for k, v in env.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    flags = [*TINY, *small_model_flags("unet"), "--epochs", "1", "--run-name", "w"]
    result = run([tfseg, "train", *flags], work, env)
    assert os.path.isfile(work / "runs" / "w" / "model.keras")
    assert files.read_json(str(work / "runs" / "w" / "metrics.json"))["images"] > 0
    # TensorFlow's C++ start-up lines are hidden unless asked for.
    for noise in ("oneDNN custom operations", "cpu_feature_guard", "absl::"):
        assert noise not in result.stdout + result.stderr

    compare = [tfseg, "compare", "--models", "unet,pix2pix", *TINY, "--epochs", "1"]
    compare += ["--model-arg", "unet:base_filters=4", "--model-arg"]
    compare += ["pix2pix:base_filters=4", "--output-dir", "cmp"]
    compare += ["--train-args", "--encoder-weights", "none"]
    result = run(compare, work, env)
    table = (work / "cmp" / "comparison.csv").read_text()
    assert table.count(",ok,") == 2, table
