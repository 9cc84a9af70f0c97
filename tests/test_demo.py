"""`tfseg demo`: the loader and the photo checks, then the page in a real
headless Chromium against a real server on 127.0.0.1.

The browser test needs the demo extra (Gradio), selenium and Debian's
`chromium` and `chromium-driver` (`.ci/run` installs them); it skips, with
the reason, where one is missing.
"""

import importlib.util
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PROJECT_ROOT
from tfseg import inference
from tfseg.data.layout import OxfordPetFolder
from tfseg.demo import logic
from tfseg.deploy import predict

PET = "Abyssinian_1.jpg"  # a 600 x 400 JPEG of the shared sample
RGBA_PET = "Abyssinian_5.jpg"  # an RGBA PNG under a .jpg name, 200 x 150
PHOTO_INPUT = "#photo input[type=file]"


def sample(shared_data, name):
    return str(shared_data / "oxford_iiit_pet" / "images" / name)


@pytest.fixture(scope="module")
def loaded(finished_run):
    return logic.load_for_demo(finished_run)


def test_a_run_loads_with_what_its_second_tab_shows(loaded, finished_run):
    assert loaded.class_names == ("pet", "background", "border")
    assert loaded.details["model"] == "unet"
    assert loaded.details["image size"] == "32 px"
    assert loaded.details["epochs"] == "2 of 2"
    assert loaded.details["precision"] == "float32"
    with open(os.path.join(finished_run, "metrics.md")) as file:
        assert loaded.report == file.read()
    assert sorted(loaded.figures) == ["test predictions", "training curves"]
    # Examples: the first pets of the run's own test split (synthetic here).
    folder = os.path.dirname(os.path.dirname(loaded.examples[0]))
    test_names = [name for name, *_ in OxfordPetFolder(folder).read_list("test")]
    assert [os.path.basename(path) for path in loaded.examples] == [
        f"{name}.jpg" for name in test_names[: logic.NUM_EXAMPLES]
    ]


def test_photos_of_any_mode_give_the_masks_predict_gives(
    loaded, finished_run, shared_data, tmp_path
):
    grey = tmp_path / "grey.png"
    Image.open(sample(shared_data, PET)).convert("L").save(grey)
    photos = [sample(shared_data, PET), sample(shared_data, RGBA_PET), str(grey)]
    predict.predict_files(finished_run, photos, str(tmp_path / "out"))
    for path, stem in zip(photos, ("Abyssinian_1", "Abyssinian_5", "grey")):
        segmentation = logic.segment_photo(loaded, path)
        with Image.open(tmp_path / "out" / f"{stem}_mask.png") as predicted:
            np.testing.assert_array_equal(segmentation.mask, np.asarray(predicted))
        width, height = segmentation.size
        assert segmentation.pixels.sum() == width * height
        table = logic.share_table(segmentation, loaded.class_names)
        shares = [float(share) for share in re.findall(r"([\d.]+) %", table)]
        assert len(shares) == 3 and abs(sum(shares) - 100) <= 0.15


def test_an_exported_model_file_is_served_as_a_run_is(
    loaded, finished_run, shared_data
):
    exported = logic.load_for_demo(os.path.join(finished_run, "model.keras"))
    assert exported.details["format"] == "keras"
    assert exported.class_names == loaded.class_names
    photo = sample(shared_data, PET)
    np.testing.assert_array_equal(
        logic.segment_photo(exported, photo).mask,
        logic.segment_photo(loaded, photo).mask,
    )


def test_a_large_photo_is_segmented_at_its_size_and_shown_smaller(loaded, tmp_path):
    path = tmp_path / "wide.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (600, 2400, 3), np.uint8)).save(path)
    segmentation = logic.segment_photo(loaded, str(path))
    assert segmentation.pixels.sum() == 600 * 2400
    assert segmentation.image.shape == (256, 1024, 3)
    assert segmentation.mask.shape == (256, 1024)
    painted, mask = logic.render(segmentation, loaded.class_names, opacity=0.0)
    # Opacity 0 shows the photo itself above the legend strip.
    np.testing.assert_array_equal(painted[:256], segmentation.image)
    assert mask.mode == "P" and mask.size == (1024, 256)


def header_only_png(path, width, height):
    """A small PNG file (a header and one row of pixels) of any size."""
    chunks = b""
    for kind, data in (
        (b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
        (b"IDAT", zlib.compress(bytes(1 + 3 * width))),
        (b"IEND", b""),
    ):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        chunks += struct.pack(">I", len(data)) + kind + data + crc
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return str(path)


def test_bad_uploads_are_refused_with_one_readable_line(
    shared_data, tmp_path, monkeypatch
):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    truncated = tmp_path / "broken.jpg"
    with open(sample(shared_data, PET), "rb") as file:
        truncated.write_bytes(file.read(3000))
    huge = header_only_png(tmp_path / "huge.png", 8000, 6250)
    for path, words in (
        (str(text), ("notes.txt cannot be read as an image", "Drop a JPEG")),
        (str(truncated), ("broken.jpg cannot be read as an image", "truncated")),
        (huge, ("huge.png is 8000 x 6250 = 50.0 megapixels", "at most 25")),
    ):
        with pytest.raises(ValueError) as raised:
            logic.read_photo(path)
        message = str(raised.value)
        assert all(word.lower() in message.lower() for word in words), message
        assert str(tmp_path) not in message and "\n" not in message

    def decode(path):
        raise AssertionError(f"{path} was decoded")

    # The size is read from the header: a too large photo is never decoded.
    monkeypatch.setattr(inference, "read_image", decode)
    with pytest.raises(ValueError, match="50.0 megapixels"):
        logic.read_photo(huge)


# ---- the page in a real browser ------------------------------------------


@pytest.fixture
def browser():
    """A headless Chromium driven by selenium; skips, saying what is
    missing, without the demo extra, selenium or Chromium."""
    if importlib.util.find_spec("gradio") is None:
        pytest.skip('the demo extra is not installed: pip install "tfseg[demo]"')
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)"
    )
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip(
            "Chromium is not installed: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--window-size=1400,1000")
    session = webdriver.Chrome(options=options, service=Service(driver))
    yield session
    session.quit()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def page(browser, finished_run, tmp_path):
    """The browser on the page of `tfseg demo FINISHED_RUN`, served on
    127.0.0.1 by the command in its own process; yields the server's log."""
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "uploads")}
    command = [sys.executable, "-m", "tfseg", "demo", finished_run, "--port", str(port)]
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        browser.get(url)
        yield log
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait(browser, condition):
    """Waits up to 30 s for `condition(browser)`; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 30, poll_frequency=0.1).until(condition)


def text(browser, selector):
    """The text of the element at a CSS `selector`, as shown."""
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector).text


def status(browser):
    return text(browser, "#status")


def upload_and_wait(browser, path, words):
    """Drops `path` on the photo input; waits for a status holding `words`."""
    from selenium.webdriver.common.by import By

    drop = wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, PHOTO_INPUT))
    drop.send_keys(path)
    wait(browser, lambda _: words in status(browser))
    return status(browser)


def shown_shares(browser):
    """`{class: (pixels, share %)}` of the page's share table."""
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#shares tbody tr")
    cells = [row.text.replace(",", "").split() for row in rows]
    return {name: (int(pixels), float(share)) for name, pixels, share, _ in cells}


def overlay_size(browser):
    """`(width, height)` of the overlay picture once the browser drew it."""
    from selenium.webdriver.common.by import By

    picture = wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#overlay img"))
    wait(
        browser,
        lambda _: (
            picture.get_property("complete")
            and picture.get_property("naturalWidth") > 0
        ),
    )
    return picture.get_property("naturalWidth"), picture.get_property("naturalHeight")


@pytest.mark.slow
def test_the_page_in_a_real_browser(browser, page, loaded, shared_data, tmp_path):
    from selenium.webdriver.common.by import By

    said = upload_and_wait(browser, sample(shared_data, PET), "Segmented")
    assert f"{PET} (600 x 400 px)" in said
    # The overlay is the photo's size, with the legend strip below it.
    assert overlay_size(browser) == (600, 416)
    shares = shown_shares(browser)
    assert list(shares) == ["pet", "background", "border"]
    assert sum(pixels for pixels, _ in shares.values()) == 600 * 400
    assert abs(sum(share for _, share in shares.values()) - 100) <= 0.15
    browser.save_screenshot(str(tmp_path / "demo.png"))

    # One click on an example pet of the run's test split.
    browser.find_element(By.CSS_SELECTOR, "button.gallery-item").click()
    with Image.open(loaded.examples[0]) as example:
        width, height = example.size
    name = os.path.basename(loaded.examples[0])
    wait(browser, lambda _: f"{name} ({width} x {height} px)" in status(browser))

    broken = tmp_path / "broken.jpg"
    with open(sample(shared_data, PET), "rb") as file:
        broken.write_bytes(file.read(3000))
    said = upload_and_wait(browser, str(broken), "Error")
    assert "broken.jpg cannot be read as an image" in said
    assert not browser.find_elements(By.CSS_SELECTOR, "#overlay img")

    # The server goes on serving: an RGBA PNG next.
    said = upload_and_wait(browser, sample(shared_data, RGBA_PET), "200 x 150")
    assert f"Segmented {RGBA_PET}" in said
    assert sum(pixels for pixels, _ in shown_shares(browser).values()) == 30000

    browser.find_element(By.XPATH, "//button[@role='tab'][.='Model']").click()
    wait(browser, lambda _: "32 px" in text(browser, "body"))
    model_tab = text(browser, "body")
    assert "unet" in model_tab and "original resolution" in model_tab
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    # Every script, style, font and picture came from the demo's server.
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    hosts = {urllib.parse.urlsplit(url).netloc for url in fetched if "://" in url}
    assert hosts == {urllib.parse.urlsplit(browser.current_url).netloc}
    assert "Traceback" not in page.read_text()
