"""`tfseg compare`: several models trained and measured side by side.

ARCHITECTURE. `running` plans the entries (models crossed with encoders),
trains each with `tfseg train` in its own process and keeps a resumable
comparison; `measure` turns a finished run into one row (size, compute,
speed, scores); `report` writes the table and the figures. The flags come
from `tfseg.cli.parser`, the shared ones built from `TrainConfig`.
"""


def compare(args):
    """`tfseg.compare.running.compare` (see there)."""
    from tfseg.compare import running

    return running.compare(args)
