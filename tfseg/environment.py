"""What this Python holds, read without importing Keras or TensorFlow: the
versions of tfseg and its libraries (`tfseg --version`, and `config.json`
of every run), and the Keras backend a command will run on, checked before
Keras is imported (`check_backend`).
"""

import importlib.metadata
import importlib.util
import json
import os
import sys

# Keras backend -> (the module it imports, its pip package, its name in words).
BACKENDS = {
    "tensorflow": ("tensorflow", "tensorflow", "TensorFlow"),
    "jax": ("jax", "jax", "JAX"),
    "torch": ("torch", "torch", "PyTorch"),
    "numpy": ("numpy", "numpy", "NumPy"),
    "openvino": ("openvino", "openvino", "OpenVINO"),
}
# The libraries `tfseg --version` names, as their packages are called.
LIBRARIES = {"keras": "Keras", "tensorflow": "TensorFlow", "jax": "JAX"}


def keras_backend():
    """The backend Keras will pick: `$KERAS_BACKEND`, else the `backend` of
    Keras's `keras.json` (in `$KERAS_HOME`, else `~/.keras`), else
    `"tensorflow"` (Keras's default)."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    try:
        with open(os.path.join(home, "keras.json")) as file:
            return json.load(file).get("backend") or "tensorflow"
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def package_version(name):
    """The installed version of package `name`, or `None`."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions():
    """`{name: version}` of tfseg, Python, NumPy and the installed Keras,
    TensorFlow and JAX, and the Keras backend in use (see `keras_backend`)."""
    import tfseg

    found = {"tfseg": tfseg.__version__, "python": sys.version.split()[0]}
    for name in ("numpy", *LIBRARIES):
        version = package_version(name)
        if version is not None:
            found[name] = version
    found["backend"] = keras_backend()
    return found


def describe_versions():
    """One line: `tfseg 0.1.0 (Keras 3.x, TensorFlow 2.x, JAX 0.x; backend
    tensorflow)`."""
    found = versions()
    libraries = [
        f"{words} {found[name]}" for name, words in LIBRARIES.items() if name in found
    ]
    return (
        f"tfseg {found['tfseg']} ({', '.join(libraries)}; backend {found['backend']})"
    )


def check_backend():
    """Raises `ValueError` when the Keras backend named is not one, or is
    not installed here, saying how to install it or which to pick."""
    backend = keras_backend()
    installed = [
        name
        for name, (module, _, _) in BACKENDS.items()
        if name != "numpy" and importlib.util.find_spec(module) is not None
    ]
    choices = " or ".join(f"KERAS_BACKEND={name}" for name in installed)
    if backend not in BACKENDS:
        raise ValueError(
            f"KERAS_BACKEND={backend!r} is not a Keras backend; Keras has "
            f"{', '.join(BACKENDS)}. Set one of those installed here: {choices}."
        )
    module, package, words = BACKENDS[backend]
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"The Keras backend is {backend} (KERAS_BACKEND or keras.json), but "
            f"{words} is not installed here. Install it (python3 -m pip install "
            f"{package}), or pick an installed backend: {choices}."
        )
