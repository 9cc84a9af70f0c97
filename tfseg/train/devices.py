"""Devices, precision policy and data parallelism of a training run.

Imports TensorFlow or JAX only for the backend in use.
"""

import platform

import keras

from tfseg.train import hosts


def describe_devices():
    """The accelerators the Keras backend sees.

    Returns:
        list of dicts `{"kind": "GPU"|"TPU"|"CPU", "name": str,
        "compute_capability": (major, minor) or None}`.
    """
    backend = keras.backend.backend()
    devices = []
    if backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            devices.append(
                {
                    "kind": "GPU",
                    "name": details.get("device_name", gpu.name),
                    "compute_capability": details.get("compute_capability"),
                }
            )
    elif backend == "jax":
        import jax

        for device in jax.devices():
            if device.platform == "cpu":
                continue
            capability = getattr(device, "compute_capability", None)
            if isinstance(capability, str):
                capability = tuple(int(part) for part in capability.split("."))
            devices.append(
                {
                    "kind": device.platform.upper(),
                    "name": getattr(device, "device_kind", str(device)),
                    "compute_capability": capability,
                }
            )
    return devices or [
        {
            "kind": "CPU",
            "name": platform.processor() or "cpu",
            "compute_capability": None,
        }
    ]


def choose_precision(requested, devices):
    """The dtype policy for `requested` on `devices` (see `describe_devices`).

    `"auto"`: `mixed_bfloat16` on GPUs of compute capability 8.0 and up (and
    TPUs), `mixed_float16` on 7.x GPUs (Keras adds loss scaling), float32
    otherwise: mixed precision is several times slower on CPUs.
    """
    if requested != "auto":
        return requested
    kinds = {device["kind"] for device in devices}
    if kinds == {"TPU"}:
        return "mixed_bfloat16"
    if kinds != {"GPU"}:
        return "float32"
    capabilities = [tuple(d["compute_capability"] or (0, 0)) for d in devices]
    if min(capabilities) >= (8, 0):
        return "mixed_bfloat16"
    if min(capabilities) >= (7, 0):
        return "mixed_float16"
    return "float32"


def make_strategy(name, devices):
    """A `tf.distribute` strategy (TensorFlow backend) or `None`.

    `"auto"` mirrors over the local GPUs when there are several; on JAX,
    several devices get `keras.distribution.DataParallel` instead (set by
    `tfseg.train.hosts.connect` already across several hosts).
    """
    gpus = [device for device in devices if device["kind"] == "GPU"]
    backend = keras.backend.backend()
    if name == "multiworker":
        # Checked with Keras 3.15 / TensorFlow 2.21 on two local workers: fit
        # fails while building the model from a batch averaged over workers,
        # and again averaging the scalar logs of each step.
        raise ValueError(
            "--strategy multiworker: Keras 3's fit does not train under "
            "tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras"
            "#20585). Train across hosts on the JAX backend instead: "
            "KERAS_BACKEND=jax tfseg train --hosts N --host-index I "
            "--coordinator HOST:PORT on each host; or on one host with "
            "--strategy mirrored (all its GPUs)."
        )
    if hosts.count() > 1:
        return None
    if backend == "jax":
        if name == "mirrored" or (name == "auto" and len(gpus) > 1):
            keras.distribution.set_distribution(keras.distribution.DataParallel())
        return None
    if name == "none" or (name == "auto" and len(gpus) < 2):
        return None
    if backend != "tensorflow":
        raise ValueError(f"--strategy {name} needs the TensorFlow or JAX backend.")
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()


def describe_strategy(strategy):
    """`(name, replicas)` of the data parallelism in use.

    The `tf.distribute` strategy on TensorFlow, the Keras distribution (set
    by `make_strategy`) on JAX, or `(None, 1)`.
    """
    if strategy is not None:
        return type(strategy).__name__, strategy.num_replicas_in_sync
    distribution = keras.distribution.distribution()
    if distribution is None:
        return None, 1
    return type(distribution).__name__, distribution.device_mesh.devices.size
