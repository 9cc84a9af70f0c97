"""Writing files so that nothing half-written is ever left: the one atomic
writer of tfseg, and reading back what it wrote.

Every file tfseg makes (run folders, reports, pictures, exports, `.npz`
splits) goes through `atomic_path`: written to a temporary name beside the
target and renamed, so a crash or a full disk never leaves a broken file
and the temporary file is removed; files are made by `open`, so they get
the user's umask (not `mkstemp`'s 0600). An `OSError` becomes a
`FileError` naming the file and the reason.

No Keras import at module level: `tfseg --help` and the data code use it.
"""

import contextlib
import errno
import json
import os
import tempfile


class FileError(ValueError):
    """A path that cannot be read or written, with the fix."""


def umask():
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def explain_os_error(path, error):
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        reason += " (free some space and retry; nothing half-written was kept)"
    return f"Cannot write {os.fspath(path)!r}: {reason}."


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renamed onto `path` on success.

    On any failure the temporary file is removed and `path` keeps its old
    content; an `OSError` (disk full, no permission) becomes a `FileError`.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    temporary = os.path.join(directory, f".tmp_{os.getpid()}_{name}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        raise FileError(explain_os_error(path, error)) from error
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)


def atomic_write(path, content):
    """Writes `content` (str or bytes) to `path` atomically. The file is
    made by `open`, so it has the umask's mode (`mkstemp` would give 0600)."""
    mode = "wb" if isinstance(content, bytes) else "w"
    with atomic_path(path) as temporary:
        with open(temporary, mode) as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())


def write_json(path, data):
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path, default=None):
    """The JSON in `path`, or `default` if there is no such file."""
    if not os.path.isfile(path):
        return default
    try:
        with open(path) as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FileError(f"{os.fspath(path)!r} is damaged: {error}.") from error


def save_model(model, path, **kwargs):
    """`model.save(path)` through a temporary file and a rename (the temporary
    name keeps the `.keras` ending Keras reads the format from)."""
    with atomic_path(path) as temporary:
        model.save(temporary, **kwargs)


def load_model(path, *, compile=True, hint=""):
    """`keras.models.load_model`, with a clear error for a damaged file."""
    import keras  # only where a model is loaded

    import tfseg

    tfseg.register_keras_objects()  # those of compiled checkpoints (last.keras)

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileError(f"{path!r} does not exist.{hint and ' ' + hint}")
    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as error:  # any failure means a bad file
        reason = str(error).strip().splitlines()[0][:200] if str(error) else ""
        raise FileError(
            f"{path!r} cannot be read: the file is damaged or not a Keras "
            f"model ({type(error).__name__}: {reason}).{hint and ' ' + hint}"
        ) from error


def scratch_dir(parent, prefix):
    """A new temporary folder in `parent` (made if missing), with the
    umask's mode (not `mkdtemp`'s 0700: it is renamed into place)."""
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(dir=parent, prefix=prefix)
    os.chmod(folder, 0o777 & ~umask())
    return folder
