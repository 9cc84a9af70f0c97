"""What the command prints: native noise filtered, `--verbose` anywhere."""

import os
import subprocess
import sys

import pytest

from tfseg.cli import build_parser
from tfseg.console import filtered_stderr

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are "
    "written to STDERR",
    "I0000 00:00:1795797458.540863    3485 port.cc:153] oneDNN custom "
    "operations are on.",
    "W0000 00:00:1795797458.541786    3485 cudart_stub.cc:31] Could not find "
    "cuda drivers on your machine, GPU will not be used.",
    "Improper call to JPEG library in state 201",
    "Corrupt JPEG data: premature end of data segment",
]
KEPT = [
    "error: 3 broken example(s):",
    "E0000 00:00:1795797458.541786    3485 something.cc:31] a real error",
    "UserWarning: I0000 is not at the start of this line",
]


def test_native_noise_is_dropped_and_the_rest_passes_at_once(capfd):
    with filtered_stderr():
        for line in NOISE + KEPT:
            os.write(2, (line + "\n").encode())  # as native code writes
    err = capfd.readouterr().err
    assert err.splitlines() == KEPT


@pytest.mark.parametrize(
    "argv, verbose",
    [
        (["--verbose", "verify-data", "pets"], True),
        (["verify-data", "pets", "--verbose"], True),
        (["verify-data", "pets"], False),
    ],
)
def test_verbose_goes_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose


def test_a_process_ended_at_once_still_says_why():
    # `exit_with` (the hosts' timeout) ends the process with `os._exit`,
    # past the filter's copying thread; its last line must still be seen.
    code = (
        "import time\n"
        "from tfseg.console import exit_with, filtered_stderr\n"
        "with filtered_stderr():\n"
        "    time.sleep(0.2)\n"
        "    exit_with(2, 'error: the last word')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr == "error: the last word\n"
