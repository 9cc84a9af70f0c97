"""Synthetic pets in the official folder layout, for tests and smoke runs.

Each image is a textured background with one or two filled shapes (ellipses
and polygons, the "pets") whose outline is a border band, the way the real
trimaps mark the uncertain edge of an animal. Written with Pillow and NumPy
only, as real JPEG images, PNG trimaps and split lists.
"""

import os

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFilter

from tfseg.data.layout import BREEDS

TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3


def synthetic_pet(rng, height, width, border=3):
    """One synthetic image `(h, w, 3)` uint8 and its trimap `(h, w)` (1, 2, 3)."""
    # Textured background: smooth colour gradient plus noise.
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    base = rng.uniform(40, 200, 3)
    tilt = rng.uniform(-60, 60, (2, 3))
    background = base + ys[..., None] * tilt[0] + xs[..., None] * tilt[1]
    background += rng.normal(0, 12, (height, width, 3))
    pet_layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(pet_layer)
    for _ in range(rng.integers(1, 3)):
        cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
        rx, ry = rng.uniform(0.12, 0.3) * width, rng.uniform(0.12, 0.3) * height
        if rng.random() < 0.5:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 7)))
            points = [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]
            draw.polygon(points, fill=255)
    pet = np.asarray(pet_layer) > 0
    outline = Image.fromarray(pet.astype("uint8") * 255)
    grown = np.asarray(outline.filter(ImageFilter.MaxFilter(2 * border + 1))) > 0
    shrunk = np.asarray(outline.filter(ImageFilter.MinFilter(2 * border + 1))) > 0
    trimap = np.full((height, width), TRIMAP_BACKGROUND, np.uint8)
    trimap[grown & ~shrunk] = TRIMAP_BORDER
    trimap[shrunk] = TRIMAP_PET
    fur = rng.uniform(60, 230, 3) + rng.normal(0, 25, (height, width, 3))
    image = np.where(pet[..., None], fur, background)
    return np.clip(image, 0, 255).astype(np.uint8), trimap


def write_synthetic_pets(
    root,
    num_images=24,
    *,
    size_range=(96, 200),
    test_fraction=0.5,
    write_lists=True,
    seed=0,
):
    """Writes synthetic pets in the official Oxford-IIIT Pet layout.

    Args:
        root: folder to create (`images/`, `annotations/trimaps/`, lists).
        num_images: number of image/trimap pairs. Defaults to `24`.
        size_range: smallest and largest side in pixels. Defaults to
            `(96, 200)`.
        test_fraction: share listed in `test.txt`. Defaults to `0.5`.
        write_lists: write `trainval.txt` and `test.txt`. Defaults to `True`.
        seed: random seed. Defaults to `0`.

    Returns:
        The list of names written, e.g. `["Abyssinian_1", "beagle_2", ...]`.
    """
    rng = np.random.default_rng(seed)
    images_dir = os.path.join(root, "images")
    trimaps_dir = os.path.join(root, "annotations", "trimaps")
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(trimaps_dir, exist_ok=True)
    names, lines = [], []
    for index in range(num_images):
        breed_id = (0, 1, 5, 4)[index % 4]  # a few breeds, cats and dogs
        name = f"{BREEDS[breed_id]}_{index + 1}"
        height, width = rng.integers(size_range[0], size_range[1] + 1, 2)
        image, trimap = synthetic_pet(rng, int(height), int(width))
        Image.fromarray(image).save(os.path.join(images_dir, f"{name}.jpg"), quality=92)
        Image.fromarray(trimap).save(os.path.join(trimaps_dir, f"{name}.png"))
        species = 1 if BREEDS[breed_id][0].isupper() else 2
        lines.append(f"{name} {breed_id + 1} {species} {index + 1}")
        names.append(name)
    if write_lists:
        order = rng.permutation(num_images)
        num_test = int(round(test_fraction * num_images))
        test = set(order[:num_test].tolist())
        for file_name, chosen in (
            ("trainval.txt", [i for i in range(num_images) if i not in test]),
            ("test.txt", sorted(test)),
        ):
            with open(os.path.join(root, "annotations", file_name), "w") as file:
                file.writelines(lines[i] + "\n" for i in chosen)
    return names
