"""``pixelzoo serve`` and ``pixelzoo report`` in a real browser: Debian's Chromium, headless, driven by
Selenium through Debian's chromium-driver (``scripts/setup.sh`` installs both where apt-get works;
these tests skip, saying why, where either is absent). The page loads and lists the zoo; sampling
shows rows arriving and then the full grid; a mask drawn with the mouse on a test image yields
completions that keep the drawn pixels; a bad value shows the server's message; the report file
renders its images from disk."""

import base64
import io
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from pixelzoo.serve.server import PageServer

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                 reason="Chromium and chromium-driver are not installed (apt-get install chromium "
                                        "chromium-driver; scripts/setup.sh does it where apt-get works)")]


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))


@pytest.fixture(scope="module")
def page():
    with PageServer(None, port=0).start() as server:
        driver = browser()
        try:
            yield driver, server
        finally:
            driver.quit()


def wait(driver, condition, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def open_model(driver, server, name):
    driver.get(server.url)
    button = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f'#model-list button[data-model="{name}"]'))
    button.click()
    wait(driver, lambda d: d.find_element(By.ID, "model-name").text == name)


def decode(uri):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("L"))


def test_page_lists_the_zoo_and_shows_a_card(page):
    driver, server = page
    open_model(driver, server, "zoo:fashion-gated")
    assert "2.8576" in driver.find_element(By.ID, "card-table").text
    tabs = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#tabs button")]
    assert tabs == ["Sample", "Inpaint", "Surprise map", "Curves"]
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_sampling_shows_rows_arriving_then_the_full_grid(page):
    driver, server = page
    open_model(driver, server, "zoo:fashion-gated")
    driver.execute_script("""window.__pictures = [];
        new MutationObserver(() => window.__pictures.push(document.getElementById('result').src))
            .observe(document.getElementById('result'), {attributes: true, attributeFilter: ['src']});""")
    count = driver.find_element(By.NAME, "count")
    count.clear()
    count.send_keys("8")
    driver.find_element(By.CSS_SELECTOR, "#sample-form .run").click()
    wait(driver, lambda d: d.find_element(By.ID, "status-text").text.startswith("done"))
    pictures = [p for p in driver.execute_script("return window.__pictures") if p.startswith("data:")]
    # rows arrived as pictures before the end (the stream sends the latest of 28 rows: a busy reader may skip some)
    assert len(set(pictures)) >= 3
    first, last = decode(pictures[0]), decode(pictures[-1])
    assert first.shape == last.shape == (30, 8 * 29 + 1)  # 8 images of 28x28 in a row, 1-pixel padding
    cells = [(slice(11, 29), slice(1 + k * 29, 29 + k * 29)) for k in range(8)]  # rows 10-27 of each image
    assert all((first[c] == 0).all() for c in cells)  # an early picture: its lower rows not drawn yet
    assert all((last[c] != 0).any() for c in cells)
    assert "8 samples" in driver.find_element(By.ID, "caption").text
    assert driver.find_element(By.CSS_SELECTOR, "#sample-form .stop").get_attribute("disabled")


def test_a_mask_drawn_with_the_mouse_gives_completions_that_keep_it(page):
    driver, server = page
    open_model(driver, server, "zoo:digits")
    driver.find_element(By.CSS_SELECTOR, '#tabs button[data-kind="inpaint"]').click()
    wait(driver, lambda d: d.find_element(By.ID, "picked").text.startswith("test image 0"))
    canvas = driver.find_element(By.ID, "canvas")
    driver.execute_script("arguments[0].scrollIntoView()", canvas)
    size = canvas.size
    actions = ActionChains(driver)  # a stroke across the top three rows of the 8x8 digit
    actions.move_to_element_with_offset(canvas, -size["width"] // 2 + 2, -size["height"] // 2 + 2).click_and_hold()
    for row in range(3):
        y = -size["height"] // 2 + int((row + 0.5) * size["height"] / 8)
        actions.move_to_element_with_offset(canvas, -size["width"] // 2 + 2, y)
        actions.move_to_element_with_offset(canvas, size["width"] // 2 - 2, y)
    actions.release().perform()
    mask = np.array([c == "1" for c in driver.execute_script("return Array.from(mask).join('')")]).reshape(8, 8)
    assert mask[:3].all() and not mask[4:].any()
    driver.find_element(By.CSS_SELECTOR, "#image-form .run").click()
    wait(driver, lambda d: d.find_element(By.ID, "status-text").text.startswith("done"))
    grid = decode(driver.find_element(By.ID, "result").get_attribute("src"))
    image = grid[1:9, 1:9]
    completions = [grid[1:9, 1 + k * 9:9 + k * 9] for k in range(2, 6)]
    assert all((c[mask] == image[mask]).all() for c in completions)
    assert any((c[~mask] != image[~mask]).any() for c in completions)  # the rest was drawn, not copied


def test_a_bad_value_shows_the_servers_message(page):
    driver, server = page
    open_model(driver, server, "zoo:digits")
    count = driver.find_element(By.NAME, "count")
    count.clear()
    count.send_keys("500")
    driver.find_element(By.CSS_SELECTOR, "#sample-form .run").click()
    error = wait(driver, lambda d: d.find_element(By.ID, "error") if d.find_element(By.ID, "error").is_displayed()
                 else None)
    assert "count must be an integer from 1 to 64" in error.text


def test_the_report_renders_its_images_from_disk(tmp_path):
    from pixelzoo.commands.report import write_report

    out = write_report("zoo:fashion-gated", tmp_path / "report.html")
    driver = browser()
    try:
        driver.get(out.resolve().as_uri())
        wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")
        time.sleep(0.2)
        sizes = driver.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert sizes and all(done and width > 0 for done, width in sizes)
    finally:
        driver.quit()
