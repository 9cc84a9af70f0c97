"""`tfseg verify-data DIR`: check a dataset folder and name every broken file.

Checks what training would trip over, all in one report: images without a
trimap and trimaps without an image, split-list lines that are malformed or
name missing files, and each image/trimap pair through the pipeline's own
decoders and checks (`decoding.inspect_pair`).
"""

import sys

from tfseg.data.layout import SPLIT_LISTS
from tfseg.data.layout import OxfordPetFolder
from tfseg.progress import Progress


def verify_folder(directory, out=None):
    """Checks every image/trimap pair and split-list entry of a folder.

    Prints a report to `out`: one `BROKEN NAME: problem` line per problem,
    then a summary line; progress on the pair checks goes there too.

    Args:
        directory: a folder in the official archive layout (see
            `OxfordPetFolder`).
        out: a text stream. Defaults to standard output.

    Returns:
        The number of problems found (0: the folder is fine).

    Raises:
        ValueError: if `directory` is not such a folder.

    Example:

    >>> verify_folder("data/oxford_iiit_pet")  # doctest: +SKIP
    521 image/trimap pairs checked in data/oxford_iiit_pet: 0 problem(s).
    0
    """
    from tfseg.data.decoding import inspect_pair  # TensorFlow decoders

    out = out or sys.stdout
    folder = OxfordPetFolder(directory)
    problems = {}
    images = folder.stems(folder.images_dir, ".jpg")
    trimaps = folder.stems(folder.trimaps_dir, ".png")
    for name in sorted(images - trimaps):
        problems[name] = f"image has no trimap {folder.trimap_path(name)!r}"
    for name in sorted(trimaps - images):
        missing = folder.is_missing("image", folder.image_path(name))
        problems[name] = f"trimap has no image: {missing}"
    for split, file_name in SPLIT_LISTS.items():
        try:
            entries = folder.read_list(split)
        except ValueError as error:
            problems[f"annotations/{file_name}"] = str(error)
            continue
        if entries is None:
            print(f"note: annotations/{file_name} is absent", file=out)
            continue
        _, missing = folder.records(entries)  # {name: what is missing}
        for name, problem in missing.items():
            problems[name] = f"listed in {file_name} but {problem}"
    pairs = folder.paired_names()
    progress = Progress(len(pairs), "checking pairs", stream=out)
    for name in pairs:
        problem = inspect_pair(folder.image_path(name), folder.trimap_path(name))
        if problem:
            problems[name] = problem
        progress.advance()
    progress.done()
    for name, problem in sorted(problems.items()):
        print(f"BROKEN {name}: {problem}", file=out)
    print(
        f"{len(pairs)} image/trimap pairs checked in {folder.root}: "
        f"{len(problems)} problem(s).",
        file=out,
    )
    return len(problems)
