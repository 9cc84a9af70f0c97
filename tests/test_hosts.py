"""`tfseg train --hosts 2`: two real processes on 127.0.0.1, JAX's distributed
runtime over CPU devices (gloo collectives), without TensorFlow.

The hosts train on `.npz` splits exported from the shared pet sample at
32 px: 8 training images, so that each epoch is one step of the global
batch (4 per host), which a single process with `--batch-size 8` takes too.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT
from tests.conftest import SHARED_DATA
from tests.test_training import RUN_FILES
from tfseg import files
from tfseg import runs
from tfseg.cli import main as cli_main
from tfseg.data import ArrayBatches
from tfseg.data.arrays import Examples

EPOCHS = 4
SMALL_UNET = ["--model", "unet", "--encoder-weights", "none"]
SMALL_UNET += ["--model-arg", "base_filters=4", "--model-arg", "depth=2"]


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """The shared sample exported at 32 px, 8 examples a split."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    out = tmp_path_factory.mktemp("pets") / "pets32.npz"
    flags = ["--data-dir", str(SHARED_DATA / "oxford_iiit_pet"), "--image-size"]
    flags += ["32", "--max-examples", "8", "--out", str(out)]
    assert cli_main(["export-data", *flags]) == 0
    return out


def free_addresses(count=1):
    """`count` distinct free local addresses. The probes stay bound until
    all are chosen: one closed at once frees its port, and the next probe
    may be given the same one (two clusters of one test then met on one
    coordinator port, and a host exited 2 without a word)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{probe.getsockname()[1]}" for probe in probes]


class Cluster:
    """Processes of `tfseg train` (JAX backend, TensorFlow hidden), each
    logging to a file; every one is killed on leaving a `with` block."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.processes = []
        # The processes share the tests' compilation cache (conftest.py):
        # the resumed hosts reuse what the first ones compiled.
        self.env = dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1")

    def start(self, *flags):
        log = self.tmp_path / f"process_{len(self.processes)}.log"
        with open(log, "w") as output:
            process = subprocess.Popen(
                [sys.executable, "tests/without_tensorflow.py", "train_pet.py"]
                + [str(flag) for flag in flags],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        process.log = log
        self.processes.append(process)
        return process

    def start_hosts(self, *flags, hosts=2):
        (address,) = free_addresses()
        return [
            self.start(
                *flags,
                "--hosts",
                hosts,
                "--host-index",
                index,
                "--coordinator",
                address,
            )
            for index in range(hosts)
        ]

    @staticmethod
    def finish(process, timeout=300):
        """`(exit code, output)` of a process, waiting at most `timeout` s."""
        code = process.wait(timeout=timeout)
        return code, process.log.read_text()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def weights(path):
    return keras.models.load_model(path, compile=False).get_weights()


@pytest.mark.slow
def test_two_hosts_train_as_one_process_on_the_global_batch(pets, tmp_path):
    flags = ["--data-npz", pets, "--image-size", "32", *SMALL_UNET, "--no-augment"]
    flags += ["--warmup-epochs", "0", "--epochs", EPOCHS, "--output-dir"]
    flags += [tmp_path / "runs"]
    two = tmp_path / "runs" / "two"
    with Cluster(tmp_path) as cluster:
        one = cluster.start(*flags, "--batch-size", "8", "--run-name", "one")
        hosts = cluster.start_hosts(*flags, "--batch-size", "4", "--run-name", "two")
        # Kill both hosts once host 0 has checkpointed an epoch, mid-run.
        deadline = time.monotonic() + 300
        while (
            files.read_json(two / "state.json", {"epochs_done": 0})["epochs_done"] < 1
        ):
            assert time.monotonic() < deadline, hosts[0].log.read_text()[-3000:]
            assert hosts[0].poll() is None, hosts[0].log.read_text()[-3000:]
            time.sleep(0.05)
        for process in hosts:
            process.send_signal(signal.SIGKILL)
            process.wait()
        killed_at = files.read_json(two / "state.json")["epochs_done"]
        assert 1 <= killed_at < EPOCHS
        resumed = cluster.start_hosts("--resume", two)
        for process in [*resumed, one]:
            code, output = cluster.finish(process)
            assert code == 0, output[-3000:]
    assert f"Epoch {killed_at + 1}/{EPOCHS}" in resumed[0].log.read_text()
    assert "host 1: finished; host 0 writes" in resumed[1].log.read_text()

    # Host 0 wrote a whole run folder, and the global batch is recorded.
    assert RUN_FILES <= set(os.listdir(two))
    assert not [name for name in os.listdir(two) if name.startswith(".tmp_")]
    record = files.read_json(two / "config.json")
    assert (record["hosts"], record["replicas"], record["global_batch_size"]) == (
        2,
        2,
        8,
    )
    assert (record["config"]["batch_size"], record["versions"]["backend"]) == (
        4,
        "jax",
    )
    # Each epoch is one step of the same global batch: the two hosts (killed
    # and resumed) end where one process stepping on it ends.
    alone = tmp_path / "runs" / "one"
    for mine, its in zip(weights(two / "last.keras"), weights(alone / "last.keras")):
        np.testing.assert_allclose(mine, its, rtol=1e-3, atol=1e-4)
    history, alone_history = runs.history_rows(two), runs.history_rows(alone)
    assert [int(row["epoch"]) for row in history] == list(range(EPOCHS))
    for row, alone_row in zip(history, alone_history):
        for key in ("loss", "val_loss", "val_mean_iou"):
            # One pixel of 8 x 32 x 32 moves an IoU by about 1e-4.
            assert float(row[key]) == pytest.approx(float(alone_row[key]), abs=1e-3)
    # Validation and test scores are over the whole splits.
    report = files.read_json(two / "metrics.json")
    alone_report = files.read_json(alone / "metrics.json")
    assert report["images"] == alone_report["images"] == 8
    for key in ("pixel_accuracy", "mean_iou"):
        mine, its = (
            report["training_resolution"][key],
            alone_report["training_resolution"][key],
        )
        assert mine == pytest.approx(its, abs=1e-3)


@pytest.mark.slow
def test_hosts_that_cannot_train_together_stop_with_one_line(pets, tmp_path):
    flags = ["--data-npz", pets, "--image-size", "32", *SMALL_UNET]
    flags += ["--output-dir", tmp_path / "runs", "--hosts", "2"]
    with Cluster(tmp_path) as cluster:
        started = time.monotonic()
        nobody, address = free_addresses(2)
        alone = cluster.start(
            *flags,
            "--host-index",
            "1",
            "--coordinator",
            nobody,
            "--host-timeout",
            "3",
        )
        differing = [
            cluster.start(
                *flags,
                "--host-index",
                index,
                "--coordinator",
                address,
                "--epochs",
                epochs,
            )
            for index, epochs in enumerate([2, 3])
        ]
        code, output = cluster.finish(alone, timeout=120)
        elapsed = time.monotonic() - started
        results = [cluster.finish(process) for process in differing]
    # A host whose peer never comes: one line, exit 2, within the timeout
    # (and the start-up of Keras and JAX).
    assert code == 2, output[-3000:]
    assert "error: host 1 of 2 could not join the others" in output
    assert "within 3 s" in output and "--host-timeout" in output
    assert elapsed < 60
    # Hosts started with other settings: every host stops, saying which.
    for code, output in results:
        assert code == 2, output[-3000:]
        assert "host(s) 1 were started with other settings than host 0" in output
    for output in [output for _, output in results] + [alone.log.read_text()]:
        assert "Traceback" not in output and "Check failure" not in output
    assert not (tmp_path / "runs").exists()


def test_shards_serve_the_one_host_batches_between_them():
    rng = np.random.default_rng(0)
    examples = Examples(
        rng.integers(0, 255, (20, 8, 8, 3), np.uint8),
        rng.integers(0, 3, (20, 8, 8, 1), np.uint8),
        np.array([f"pet_{i}" for i in range(20)]),
        np.zeros(20, np.int32),
        np.zeros(20, np.int32),
    )
    options = dict(training=True, seed=3, initial_epoch=2, on_device=False)
    whole = ArrayBatches(examples, 6, **options)
    shards = [
        ArrayBatches(examples, 3, num_shards=2, shard_index=i, **options)
        for i in range(2)
    ]
    assert whole.num_batches == shards[0].num_batches == shards[1].num_batches == 3
    for index in range(whole.num_batches):
        images, _ = whole[index]
        parts = np.concatenate([shard[index][0] for shard in shards])
        assert sorted(map(bytes, parts)) == sorted(map(bytes, images))
