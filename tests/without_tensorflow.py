"""Runs a script as if TensorFlow were not installed, as on the GPU machines.

    python tests/without_tensorflow.py SCRIPT [ARGS...]

Every import finder is wrapped so that it does not find `tensorflow` or
`tensorflow_datasets`: importing them raises ModuleNotFoundError and
`importlib.util.find_spec` returns None, as where they are absent.
"""

import os
import pathlib
import runpy
import subprocess
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets")


class _Hide:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, name):
        return getattr(self.finder, name)


def run(*args, **environment):
    """Runs `python tests/without_tensorflow.py ARGS` from the project root
    on the JAX backend (plus `environment`); returns the CompletedProcess."""
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1", **environment)
    return subprocess.run(
        [sys.executable, __file__, *args],
        cwd=pathlib.Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def hide_tensorflow():
    if any(name.split(".")[0] in BLOCKED for name in sys.modules):
        raise RuntimeError("TensorFlow was imported before it could be hidden.")
    sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]


if __name__ == "__main__":
    hide_tensorflow()
    sys.argv = sys.argv[1:]
    sys.path.insert(0, ".")
    runpy.run_path(sys.argv[0], run_name="__main__")
