"""Progress of long steps outside `fit`: decoding, scoring, predicting.

On a terminal, Keras's `Progbar` (one line, redrawn); elsewhere (a log file,
a pipe, CI) a plain line at each tenth of the work, at most one every
`LINE_SECONDS`, and one at the end, so logs stay short and still show that
something moves.
"""

import sys
import time

LINE_SECONDS = 5.0


class Progress:
    """Counts `total` items of a step called `label`.

    Usage::

        progress = Progress(len(paths), "predicting")
        for path in paths:
            ...
            progress.advance()
        progress.done()

    Args:
        total: the number of items, or `None` when unknown.
        label: what is being done, e.g. `"decoding train"`.
        stream: where lines go. Defaults to standard output.
        enabled: `False` prints nothing. Defaults to `True`.
    """

    def __init__(self, total, label, stream=None, enabled=True):
        self.total = total
        self.label = label
        self.stream = stream or sys.stdout
        self.count = 0
        self.enabled = enabled
        self.start = time.perf_counter()
        self._next_line = 0.1
        self._last_line = self.start
        self._bar = None
        if enabled and total and _is_terminal(self.stream):
            from keras.utils import Progbar  # terminals only

            print(label, file=self.stream, flush=True)
            self._bar = Progbar(total, unit_name="item")

    def advance(self, count=1):
        self.count += count
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(min(self.count, self.total))
        elif self.total and self.count / self.total >= self._next_line:
            while self.count / self.total >= self._next_line:
                self._next_line += 0.1
            now = time.perf_counter()
            if self.count < self.total and now - self._last_line >= LINE_SECONDS:
                self._last_line = now
                self._line(f"{self.count}/{self.total}")

    def done(self, summary=""):
        """Ends the step with a line: count, seconds and `summary`."""
        if not self.enabled:
            return
        seconds = time.perf_counter() - self.start
        total = f"/{self.total}" if self.total else ""
        extra = f"; {summary}" if summary else ""
        self._line(f"{self.count}{total} done in {seconds:.1f} s{extra}")

    def _line(self, text):
        print(f"{self.label}: {text}", file=self.stream, flush=True)


def _is_terminal(stream):
    return hasattr(stream, "isatty") and stream.isatty()
