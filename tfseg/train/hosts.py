"""Training across several hosts: JAX's distributed runtime and `keras.distribution`.

    # on each of N hosts (host 0 runs the coordinator at HOST:PORT)
    KERAS_BACKEND=jax tfseg train --hosts N --host-index I --coordinator HOST:PORT ...

Keras 3 trains across hosts on the JAX backend only (its `fit` fails under
TensorFlow's `MultiWorkerMirroredStrategy`, keras-team/keras#20585). Every
host runs the same command (only `--host-index` differs), builds the same
model from the same seed, and serves its own slice of each global batch
(`ArrayBatches(num_shards=N, shard_index=I)`); `keras.distribution.DataParallel`
over every device of every host makes one step of the global batch.

- Host 0 is the writing host: it alone writes the run folder (checkpoints,
  history, reports); the others write nothing there (`is_writer`).
- The flags may come from the variables `keras.distribution.initialize`
  reads (`ENVIRONMENT`); flags win.
- What could make hosts drift apart is checked at the start: their
  settings (a hash, `--host-index` left out) must agree, and an error on one
  host while the run is prepared stops every host (`together`), so no host
  waits forever in a collective.

Imports JAX only when several hosts are configured.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import threading

import numpy as np

from tfseg import console
from tfseg.config import flag

# TrainConfig field -> the variable `keras.distribution.initialize` reads.
ENVIRONMENT = {
    "hosts": "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "host_index": "KERAS_DISTRIBUTION_PROCESS_ID",
    "coordinator": "KERAS_DISTRIBUTION_JOB_ADDRESSES",
}
# Bytes of one host's message in `exchange`: a hash, a time, an error line.
MESSAGE_BYTES = 2048


@dataclasses.dataclass
class _Runtime:
    count: int = 1
    index: int = 0


_runtime = _Runtime()


def count():
    """The number of hosts (processes) training together; 1 without `connect`."""
    return _runtime.count


def index():
    """This host's index, 0 to `count() - 1`."""
    return _runtime.index


def is_writer():
    """Whether this host writes the run folder: host 0, or the only host."""
    return _runtime.index == 0


def from_environment(config, explicit=None):
    """`config` with the host settings the user did not give taken from the
    environment (`ENVIRONMENT`; for the coordinator, the first of the comma
    separated job addresses). Returns `(config, explicit)`, the names of the
    settings taken added to `explicit` (left `None` if it was).

    Raises:
        ValueError: for a variable that is not a number where one is needed.
    """
    given = set(explicit or ())
    changes = {}
    for name, variable in ENVIRONMENT.items():
        value = os.environ.get(variable)
        if name in given or not value:
            continue
        if name == "coordinator":
            changes[name] = value.split(",")[0].strip()
            continue
        try:
            changes[name] = int(value)
        except ValueError:
            raise ValueError(
                f"{variable}={value!r} is not a whole number; set it to the "
                f"{'number of hosts' if name == 'hosts' else 'index of this host'}"
                f", or pass {flag(name)}."
            ) from None
    config = dataclasses.replace(config, **changes)
    return config, None if explicit is None else given | set(changes)


def settings_digest(config):
    """A hash of the settings every host must share (`--host-index` apart)."""
    values = dataclasses.asdict(config)
    values.pop("host_index")
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def connect(config, stamp):
    """Joins the hosts of `config` (nothing to do for one host).

    Starts JAX's distributed runtime (host 0 runs the coordinator), spreads
    every batch over every device of every host (`DataParallel`), and
    checks that every host was given the same settings. A host that cannot
    join the others within `config.host_timeout` seconds prints one line
    and exits with code 2 (`_join_within`).

    Args:
        config: a `TrainConfig`; `hosts`, `host_index`, `coordinator` and
            `host_timeout` are read.
        stamp: this host's start time, which names a new run folder.

    Returns:
        Host 0's `stamp`, so that every host names the same folder.

    Raises:
        ValueError: for another backend than JAX, or settings that differ
            between hosts.
    """
    if config.hosts == 1:
        return stamp
    import keras

    if keras.backend.backend() != "jax":
        raise ValueError(
            f"--hosts {config.hosts} trains across hosts with JAX's distributed "
            f"runtime, but the Keras backend is {keras.backend.backend()!r}. Set "
            "KERAS_BACKEND=jax on every host (TensorFlow, where installed, then "
            "only decodes images); on one host, --strategy mirrored uses all "
            "its GPUs."
        )
    import jax

    # Collectives between CPU processes (tests, the CPU benchmark); GPUs
    # use NCCL whatever this says.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    _join_within(config)
    _runtime.count, _runtime.index = config.hosts, config.host_index
    _place_variables_without_collectives()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(auto_shard_dataset=False)
    )
    messages = [
        json.loads(m) for m in exchange(json.dumps([settings_digest(config), stamp]))
    ]
    differing = [
        host for host, (digest, _) in enumerate(messages) if digest != messages[0][0]
    ]
    if differing:
        raise ValueError(
            f"host(s) {', '.join(map(str, differing))} were started with other "
            "settings than host 0 (their hashes differ). Start every host with "
            "the same flags and data; only --host-index differs."
        )
    return messages[0][1]


def _join_within(config):
    """Calls JAX's `initialize` for this host; exits with code 2 and one
    line if the hosts have not all joined within `config.host_timeout`.

    JAX's runtime cannot be interrupted while it waits, and at its own
    timeout it aborts the process with a C++ stack trace; so a timer
    speaks first (before anything of the run is written) and ends the
    process itself.
    """
    import jax

    message = (
        f"error: host {config.host_index} of {config.hosts} could not join the "
        f"others through the coordinator at {config.coordinator} within "
        f"{config.host_timeout:g} s. Start all {config.hosts} hosts with the "
        "same --hosts and --coordinator (host 0 runs the coordinator, so HOST "
        "is its address and PORT must be free there), check that this host "
        "reaches it, or raise --host-timeout."
    )

    timer = threading.Timer(config.host_timeout, console.exit_with, (2, message))
    timer.daemon = True
    timer.start()
    try:
        jax.distributed.initialize(
            config.coordinator,
            config.hosts,
            config.host_index,
            initialization_timeout=int(config.host_timeout) + 60,
        )
    finally:
        timer.cancel()


def exchange(text):
    """Every host's `text` (up to `MESSAGE_BYTES` of UTF-8), in host order:
    a collective, so every host must call it at the same point."""
    from jax.experimental import multihost_utils

    data = text.encode()[:MESSAGE_BYTES]
    buffer = np.zeros(MESSAGE_BYTES + 4, np.uint8)
    buffer[:4] = np.frombuffer(np.uint32(len(data)).tobytes(), np.uint8)
    buffer[4 : 4 + len(data)] = np.frombuffer(data, np.uint8)
    gathered = np.asarray(multihost_utils.process_allgather(buffer))
    texts = []
    for row in gathered.reshape(-1, MESSAGE_BYTES + 4):
        size = int(np.frombuffer(row[:4].tobytes(), np.uint32)[0])
        texts.append(row[4 : 4 + size].tobytes().decode(errors="replace"))
    return texts


def first_host(value):
    """Host 0's `value` (JSON-serialisable) on every host; `value` alone
    for one host. Decisions that must be the same everywhere (stop at the
    time budget) take host 0's."""
    if count() == 1:
        return value
    return json.loads(exchange(json.dumps(value))[0])


@contextlib.contextmanager
def together():
    """An error on any host while the run is prepared stops every host.

    On leaving the block every host says whether it failed; a host that did
    raises its own error, the others a `RuntimeError` naming the failed
    host and its message. So no host goes on to train and waits forever for
    a peer that stopped. For one host, nothing is added.
    """
    if count() == 1:
        yield
        return
    try:
        yield
    except (ValueError, RuntimeError, OSError) as error:
        exchange(f"{type(error).__name__}: {error}")
        raise
    failures = [(host, text) for host, text in enumerate(exchange("")) if text]
    if failures:
        host, text = failures[0]
        raise RuntimeError(f"host {host} stopped, so this host stops too: {text}")


def work_alone():
    """Leaves data parallelism across hosts: what follows (the writing host's
    test report) runs on this host's devices only."""
    if count() > 1:
        import keras

        keras.distribution.set_distribution(None)


def _place_variables_without_collectives():
    """Makes Keras place each variable with `jax.make_array_from_callback`.

    Keras places a variable's value across the hosts' devices with
    `jax.device_put`, which first checks with a collective that every host
    holds the same value. That costs a compiled collective per variable
    (a small U-Net took 100 s to build over two CPU processes), and it
    hangs when one host alone creates variables: host 0 saving a checkpoint
    (Keras builds a throwaway optimizer there). Every host holds the same
    value here (same seed, same checkpoint, settings compared at the start),
    so each host fills its own devices from its copy, without a collective.
    """
    import jax
    from keras.src.backend.jax import distribution_lib
    from keras.src.utils import jax_utils

    if getattr(distribution_lib.distribute_tensor, "tfseg_hosts", False):
        return
    keras_distribute_tensor = distribution_lib.distribute_tensor

    def distribute_tensor(tensor, layout):
        sharding = getattr(layout, "backend_layout", layout)
        local = not isinstance(tensor, jax.Array) or tensor.is_fully_addressable
        if jax_utils.is_in_jax_tracing_scope(tensor) or not local:
            return keras_distribute_tensor(tensor, layout)
        value = np.asarray(tensor)
        return jax.make_array_from_callback(
            value.shape, sharding, lambda where: value[where]
        )

    distribute_tensor.tfseg_hosts = True
    distribution_lib.distribute_tensor = distribute_tensor
