"""What the command prints: native libraries' noise is filtered out.

TensorFlow prints start-up lines from C++ (absl's `I0000 00:00:...
port.cc:153] oneDNN custom operations are on ...`) while it is imported,
before `TF_CPP_MIN_LOG_LEVEL` applies, and libjpeg prints `Improper call to
JPEG library in state 201` for each broken JPEG it meets. Both write to file
descriptor 2 directly, where Python cannot catch them. `filtered_stderr`
points descriptor 2 at a pipe for the length of a command; a thread copies
every line to the real standard error at once, but for those noise lines.
tfseg names broken files itself, in words.
"""

import contextlib
import os
import re
import sys
import threading

NOISE = re.compile(
    r"^("
    r"[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"  # absl INFO and WARNING
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|Improper call to JPEG library"
    r"|Corrupt JPEG data"
    r"|Premature end of JPEG file"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate"  # the LiteRT interpreter
    r"|fully_quantize: \d, inference_type: "  # the TFLite converter
    r")"
)


def is_noise(line):
    return bool(NOISE.match(line))


@contextlib.contextmanager
def filtered_stderr():
    """Within the block, lines written to file descriptor 2 (by Python or by
    native code) reach standard error unless `is_noise`."""
    global _UNFILTERED
    sys.stderr.flush()
    original = os.dup(2)
    _UNFILTERED = original
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def copy():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not is_noise(line.decode(errors="replace")):
                    os.write(original, line)

    thread = threading.Thread(target=copy, name="tfseg-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the copy ends
        thread.join(timeout=5)
        _UNFILTERED = None
        os.close(original)


_UNFILTERED = None  # standard error itself, while `filtered_stderr` filters


def exit_with(code, message):
    """Writes `message` to standard error and ends the process at once
    (`os._exit`), past the filter of `filtered_stderr`, whose copying thread
    would not get to pass it on before the process ends."""
    sys.stderr.flush()
    os.write(2 if _UNFILTERED is None else _UNFILTERED, f"{message}\n".encode())
    os._exit(code)
