"""Drawing any number of classes: colour tables, VOID, legends, by pixel."""

import numpy as np
import pytest
from PIL import Image
from PIL import ImageDraw

from tfseg import visualize
from tfseg.metrics import VOID

GREY = 100
TWELVE = [f"class {index}" for index in range(12)]


def grey_image(height, width):
    return np.full((height, width, 3), GREY, np.uint8)


def blended(colour):
    """A grey pixel under `colour` at the default opacity."""
    alpha = visualize.OPACITY
    return ((1 - alpha) * GREY + alpha * np.asarray(colour)).astype(np.uint8)


def legend_colours(picture, photo_height):
    """The fill colours of the legend boxes, row by row, left to right.

    Boxes span rows 4..12 of each 16-pixel legend row; a run of coloured
    (not grey, white or black) pixels through their middle is one box.
    """
    found = []
    for top in range(photo_height, picture.shape[0], visualize.LEGEND_ROW):
        row = picture[top + 8].astype(int)
        coloured = row.max(-1) - row.min(-1) > 30
        for column in np.flatnonzero(coloured):
            if not coloured[column - 1]:
                found.append(tuple(int(c) for c in row[column]))
    return found


def test_class_colours_keep_the_pets_and_grow_for_any_number():
    pets = visualize.class_colours(3)
    np.testing.assert_array_equal(pets[0], [255, 140, 0])  # pet: orange
    np.testing.assert_array_equal(pets[2], [0, 200, 255])  # border: cyan
    twelve = visualize.class_colours(12)
    assert twelve.shape == (12, 3)
    assert len({tuple(colour) for colour in twelve}) == 12  # all distinct
    # Deterministic, and class i keeps its colour whatever the count.
    np.testing.assert_array_equal(visualize.class_colours(40)[:12], twelve)
    given = [[10, 20, 30], [40, 50, 60]]
    np.testing.assert_array_equal(visualize.class_colours(2, given), given)


@pytest.mark.parametrize(
    "num_classes, colors, words",
    [
        (2, [[0, 0, 0]], r"shape \(1, 3\); expected one RGB.*\(2, 3\)"),
        (1, [[0, 0, 300]], "from 0.0 to 300.0; expected 0 to 255"),
        (255, None, "num_classes=255; expected 1 to 254"),
    ],
)
def test_class_colours_refuse_bad_tables(num_classes, colors, words):
    with pytest.raises(ValueError, match=words):
        visualize.class_colours(num_classes, colors)


def test_twelve_classes_are_painted_and_void_is_left_bare():
    mask = np.array([list(range(12)) + [VOID]])
    table = visualize.class_colours(12)
    painted = visualize.overlay(grey_image(1, 13), mask)
    for index in range(12):
        np.testing.assert_array_equal(painted[0, index], blended(table[index]))
    np.testing.assert_array_equal(painted[0, 12], [GREY] * 3)
    # The palette image: the same colours, VOID black.
    palette = np.asarray(visualize.palette_image(mask).convert("RGB"))
    np.testing.assert_array_equal(palette[0, :12], table)
    np.testing.assert_array_equal(palette[0, 12], [0, 0, 0])


def test_a_twelve_class_legend_has_a_box_of_each_colour():
    mask = np.array([list(range(12)) + [VOID]])
    picture = visualize.overlay_with_legend(grey_image(1, 13), mask, TWELVE)
    table = visualize.class_colours(12)
    np.testing.assert_array_equal(
        picture[:1, :13], visualize.overlay(grey_image(1, 13), mask)
    )
    assert legend_colours(picture, 1) == [tuple(int(c) for c in row) for row in table]
    handles = visualize.legend_handles(TWELVE)
    assert [handle.get_label() for handle in handles] == TWELVE
    assert handles[11].get_facecolor()[:3] == pytest.approx(tuple(table[11] / 255))


def test_given_colours_and_unpainted_classes():
    colours = [[250, 0, 0], [0, 250, 0], [0, 0, 250]]
    mask = np.array([[0, 1, 2, VOID]])
    painted = visualize.overlay(grey_image(1, 4), mask, colors=colours, unpainted=(2,))
    np.testing.assert_array_equal(painted[0, 1], blended(colours[1]))  # painted
    np.testing.assert_array_equal(painted[0, 2:], [[GREY] * 3] * 2)
    picture = visualize.overlay_with_legend(
        grey_image(1, 4), mask, ["a", "b", "c"], colors=colours, unpainted=(2,)
    )
    assert legend_colours(picture, 1) == [(250, 0, 0), (0, 250, 0)]  # c: outline
    palette = np.asarray(
        visualize.palette_image(mask, colors=colours, unpainted=(2,)).convert("RGB")
    )
    np.testing.assert_array_equal(
        palette[0], [[250, 0, 0], [0, 250, 0], [0] * 3, [0] * 3]
    )


def text_pixels(picture):
    """How many pixels of white text (grey levels, not box colours) a
    picture holds."""
    picture = np.asarray(picture).astype(int)
    grey = picture.max(-1) - picture.min(-1) < 10
    return int((grey & (picture.min(-1) > 60)).sum())


def test_long_names_fit_in_the_legend():
    names = [f"a class with a long name, number {index}" for index in range(3)]
    picture = visualize.overlay_with_legend(
        grey_image(32, 32), np.zeros((32, 32)), names, unpainted=()
    )
    # Each name drawn alone on a roomy canvas: every one of its pixels is in
    # the strip, and none touches its right edge.
    alone = 0
    for name in names:
        canvas = Image.new("RGB", (600, 16))
        ImageDraw.Draw(canvas).text((2, 2), name, fill="white")
        alone += text_pixels(canvas)
    strip = picture[32:]
    assert text_pixels(strip) == alone
    assert text_pixels(strip[:, -2:]) == 0
    # One name wider than the least strip: the picture widens for it.
    wide = ["a name far too long for the strip's least width of 400 pixels " * 2]
    picture = visualize.overlay_with_legend(grey_image(8, 8), np.zeros((8, 8)), wide)
    assert picture.shape[1] > visualize.LEGEND_MIN_WIDTH
    canvas = Image.new("RGB", (2000, 16))
    ImageDraw.Draw(canvas).text((2, 2), wide[0], fill="white")
    assert text_pixels(picture[8:]) == text_pixels(canvas)
    assert text_pixels(picture[8:, -2:]) == 0


def test_a_prediction_grid_of_twelve_classes_with_void(tmp_path):
    masks = np.array([[list(range(12)) + [VOID]]], np.uint8)
    visualize.save_prediction_grid(
        tmp_path / "grid.png", grey_image(1, 13)[None], masks, [masks[:, :, ::-1]]
    )
    assert (tmp_path / "grid.png").stat().st_size > 0
