"""Image sizes as the flags take them: a side (`128`, a square) or
`HEIGHTxWIDTH` (`352x480`), for `--image-size` and `--crop`. Pure Python."""


def image_shape(size):
    """`(height, width)` of an image size: a side, or `(height, width)`."""
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def format_size(size):
    """`"128"` or `"352x480"`: an image size as `--image-size` takes it."""
    height, width = image_shape(size)
    return str(height) if height == width else f"{height}x{width}"


def parse_size(text):
    """`--image-size`'s value: `"128"` -> `128`, `"352x480"` -> `(352, 480)`
    (height x width; a square `HxH` is the side alone).

    Raises:
        ValueError: for anything else, with the forms it takes.
    """
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) in (1, 2) and all(part.isdigit() for part in parts):
        sides = tuple(int(part) for part in parts)
        return sides[0] if len(set(sides)) == 1 else sides
    raise ValueError(
        f"an image size is a side (128) or HEIGHTxWIDTH (352x480); received {text!r}"
    )
