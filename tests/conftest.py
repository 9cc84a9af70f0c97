"""Shared test set-up: quiet TensorFlow, the shared data folder, clean state."""

import contextlib
import fcntl
import gc
import json
import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Set as tfseg sets it, so the command filters native noise in tests too.
os.environ.setdefault("TFSEG_QUIET_TENSORFLOW", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# XLA compiles many tiny programs in the tests (on JAX, each new weight shape
# is one program to compile; a small U-Net builds in 25 s of compiling on
# this 2-core machine, 16 s without XLA's optimisation passes, 11 s with a
# warm cache): the tests check what is computed, not how fast, so XLA skips
# its backend optimisation, and every test process of a run (the pytest
# workers and the `tfseg` processes they start) shares one compilation
# cache. `.ci/run` shares one between its two passes. See
# docs/BENCHMARKS.md, "The test suite".
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
OWN_JAX_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if OWN_JAX_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfseg-jax-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import keras  # noqa: E402
import pytest  # noqa: E402

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Real Oxford-IIIT Pet sample and Keras weights, never committed: read from
# ../shared/data (or $TFSEG_SHARED_DATA); tests that need them skip without.
SHARED_DATA = pathlib.Path(
    os.environ.get("TFSEG_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)


def pytest_unconfigure(config):
    if OWN_JAX_CACHE:  # made above by this process, not inherited
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


# Session fixtures that take a minute or more to build.
SLOW_FIXTURES = ("real_run", "installed")


def pytest_collection_modifyitems(config, items):
    """Orders the tests for pytest-xdist (`.ci/run`: `--dist loadscope`,
    which gives each module to one worker, so a module-scoped fixture is
    built once): the modules with the longest work (a slow or module-scoped
    fixture, then `slow` tests) go first, handed out while the other worker
    still has short modules to take. A run in one process is ordered the
    same way; within a module the order is unchanged.

    (`--dist loadgroup` would keep the users of a session fixture together
    across modules, but pytest-xdist 3.8 does not group under pytest 9: it
    renames the tests' `_nodeid`, which pytest 9 no longer reads.)
    """
    rank = {}
    for item in items:
        module = _module(item)
        rank[module] = min(rank.get(module, 2), _rank(item))
    order = {module: index for index, module in enumerate(rank)}
    items.sort(key=lambda item: (rank[_module(item)], order[_module(item)]))


def _module(item):
    return item.nodeid.split("::")[0]


def _rank(item):
    """0 for a test of a slow or module-scoped fixture, 1 for another slow
    test, 2 for the rest."""
    info = getattr(item, "_fixtureinfo", None)
    for name in item.fixturenames:
        found = info.name2fixturedefs.get(name) if info else None
        if name in SLOW_FIXTURES or (found and found[-1].scope == "module"):
            return 0
    return 1 if item.get_closest_marker("slow") else 2


def xla_flags(*flags):
    """`XLA_FLAGS` for a subprocess: the tests' own, plus `flags`."""
    return " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


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
    # Without Python's full garbage collection (free_memory=False): it takes
    # 0.2 to 1.5 s a test over TensorFlow's large heap, minutes per suite;
    # the young generations are collected, and the rest as Python does.
    keras.backend.clear_session(free_memory=False)
    gc.collect(1)


@contextlib.contextmanager
def built_once(name, tmp_path_factory):
    """A folder for the session fixture `name`, built once per test run.

    Yields `(folder, build)`: the fixture fills `folder` where `build` is
    true. Under pytest-xdist every worker shares one folder, made by the
    first worker to get there while the others wait on a lock, so the two
    workers of `.ci/run` train each fixture once, as one process does.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield tmp_path_factory.mktemp(name), True
        return
    shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done = shared / ".built"
            yield shared, not done.exists()
            done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Tiny training runs: 20 synthetic pets at 32 px, batches of 4.
TINY = ["--synthetic", "20", "--image-size", "32", "--batch-size", "4"]


def small_model_flags(name):
    """`tfseg train` flags of a small version of model `name`."""
    from tests.models.test_models import SMALL

    flags = ["--model", name, "--encoder-weights", "none"]
    for key, value in SMALL[name].items():
        if key == "alpha":
            flags += ["--alpha", str(value)]
        else:
            flags += ["--model-arg", f"{key}={json.dumps(value)}"]
    return flags


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A finished two-epoch run of a small U-Net, trained once per session;
    tests must not change it (work on `copy_run(finished_run, tmp_path)`)."""
    from tfseg.cli import main

    flags = [*TINY, *small_model_flags("unet"), "--epochs", "2", "--loss", "ce+dice"]
    with built_once("finished_run", tmp_path_factory) as (output_dir, build):
        if build:
            flags += ["--output-dir", str(output_dir), "--run-name", "done"]
            assert main(["train", *flags]) == 0
    return str(output_dir / "done")


def copy_run(run_dir, tmp_path):
    """A copy of a run folder in `tmp_path`, to change freely."""
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    return str(target)


@pytest.fixture(scope="session")
def real_run(tmp_path_factory):
    """A short run of a small pretrained MobileNetV2 U-Net (alpha 0.35, the
    default recipe) on the shared sample at 64 px, trained once per session
    (about 35 s alone); skips without the shared data. Tests must not change it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    from tfseg.cli import main

    weights = (
        SHARED_DATA
        / "keras_weights"
        / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    )
    flags = ["--model", "mobilenet_unet", "--alpha", "0.35"]
    flags += ["--encoder-weights", str(weights)]
    flags += ["--data-dir", str(SHARED_DATA / "oxford_iiit_pet")]
    # The default recipe (slim decoder, CE + Dice, the encoder at 0.1x), small.
    # 4 epochs: the int8 test's bars hold with the margins of 6 (BENCHMARKS,
    # "The test suite before and after the package layout").
    flags += ["--image-size", "64", "--epochs", "4", "--batch-size", "16"]
    with built_once("real_run", tmp_path_factory) as (output_dir, build):
        if build:
            flags += ["--output-dir", str(output_dir), "--run-name", "real"]
            assert main(["train", *flags]) == 0
    return str(output_dir / "real")


def run(command, cwd, env, timeout=600):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr)
    return result


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """`(tfseg executable, environment, working folder, python)` of a wheel
    installed into a new venv, once per session (tests/test_install.py, and
    the comparison of tests/test_compare.py, which runs from it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    with built_once("install", tmp_path_factory) as (root, build):
        python = str(root / "venv" / "bin" / "python")
        if build:
            install_wheel(root, env, python)
    # Each test process works in its own folder, beside the shared venv.
    work = tmp_path_factory.mktemp("work")
    return str(root / "venv" / "bin" / "tfseg"), env, work, python


def install_wheel(root, env, python):
    """Builds tfseg's wheel into `root/dist` and installs it into a new venv
    at `root/venv` (whose `python` also sees this interpreter's packages)."""
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["-q", "-w", str(root / "dist"), str(PROJECT_ROOT)],
        root,
        env,
    )
    (wheel,) = (root / "dist").glob("tfseg-*.whl")
    run([sys.executable, "-m", "venv", str(root / "venv")], root, env)
    outer_packages(python, env)
    run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        root,
        env,
    )


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
