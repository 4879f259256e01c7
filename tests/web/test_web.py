"""The web page in a real browser: headless Chromium (Debian's) driven by Selenium against a live
``neuraleq serve``. Skips cleanly where Chromium, its driver or Selenium is absent.

``NEURALEQ_SCREENSHOT=docs/webapp.png pytest tests/web/test_web.py`` also saves a screenshot.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from neuraleq_jax import presets
from neuraleq_jax.model import paramspace, response

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "headless Chromium and chromedriver are not installed (Debian: apt-get install "
        "chromium chromium-driver)",
        allow_module_level=True,
    )
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

MORPH_STEPS = 33
CURVE = {"height": 300, "top": 8, "bottom": 22, "max_db": 15}  # the page's drawing constants


@pytest.fixture(scope="module")
def workdir(tiny_workdir):
    """The session's tiny model: the page's behaviour does not depend on the model's size
    (``neuraleq serve`` only reads the workdir)."""
    return tiny_workdir


@pytest.fixture(scope="module")
def system(tiny_system):
    return tiny_system


@pytest.fixture(scope="module")
def base_url(workdir, tmp_path_factory):
    """``neuraleq serve --port 0`` in a child process; the URL is the one it prints (the port
    the system gave it)."""
    log_path = tmp_path_factory.mktemp("log") / "serve.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "neuraleq_jax.cli", "serve", "--workdir", str(workdir)]
        + ["--port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    deadline = time.monotonic() + 180
    while not (printed := re.search(r"on (http://127\.0\.0\.1:\d+)/ ", log_path.read_text())):
        assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, "neuraleq serve did not start"
        time.sleep(0.5)
    url = printed[1]
    urllib.request.urlopen(url + "/api", timeout=30).read()  # it is serving once it printed
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(base_url, downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,900",
        "--disable-gpu",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
    )
    driver.set_script_timeout(60)
    driver.get(base_url + "/")
    assert (
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.neuraleq.ready.then(done, (e) => done(String(e)));"
        )
        is True
    )
    yield driver
    driver.quit()


def wait_for(driver, script, timeout=30):
    """Poll a JS expression until it is truthy; return its value."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(f"return {script};")
    )


def page_state(driver, key):
    return driver.execute_script(f"return window.neuraleq.state[{json.dumps(key)}];")


def drawn_curve_db(driver) -> np.ndarray:
    """The response path as drawn, mapped back from pixels to dB."""
    path = driver.find_element(By.ID, "response-path").get_attribute("d")
    ys = np.array([float(point.split(",")[1]) for point in path[1:].split("L")])
    half = (CURVE["height"] - CURVE["top"] - CURVE["bottom"]) / 2
    return CURVE["max_db"] * (1 - (ys - CURVE["top"]) / half)


def post(base_url, path, body):
    request = urllib.request.Request(
        base_url + "/api" + path, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)


def centre_setting(system, word) -> np.ndarray:
    return np.asarray(system.morph_between_terms(word, word, steps=2, as_array=True))[0]


def word_setting(system, word) -> np.ndarray:
    """What the page shows for a word it is given: the variation of seed 0, the setting
    ``neuraleq generate WORD -n 1`` and ``neuraleq apply WORD`` use."""
    return system.generate_eq_from_semantic(word, 1, seed=0, as_array=True)[0]


def wait_for_morph_label(driver, word_a, word_b):
    """Wait until the page shows word_a→word_b at its slider's position; return that position."""
    label = wait_for(
        driver,
        f"window.neuraleq.state.label === {json.dumps(word_a + '→' + word_b)}"
        " + ' ' + (Math.round(document.getElementById('morph-position').value"
        f" * {MORPH_STEPS - 1}) / {MORPH_STEPS - 1}).toFixed(2)"
        " && window.neuraleq.state.label",
    )
    return float(label.rsplit(" ", 1)[1])


def drag_slider(driver, fractions):
    """Press on the morph slider's left end and drag through ``fractions`` of its width."""
    slider = driver.find_element(By.ID, "morph-position")
    width = slider.size["width"]
    chain = ActionChains(driver).move_to_element_with_offset(slider, -width // 2 + 2, 0)
    chain.click_and_hold()
    done = 0.0
    for fraction in fractions:
        chain.move_by_offset(round((fraction - done) * width), 0)
        done = fraction
    chain.release().perform()


def set_word(driver, word):
    field = driver.find_element(By.ID, "term")
    field.clear()
    field.send_keys(word, Keys.ENTER)
    wait_for(driver, f"window.neuraleq.state.label === {json.dumps(word)}")


def test_typing_a_word_draws_its_response(browser, system):
    word = system.vocabulary[1]
    set_word(browser, word)
    shown = word_setting(system, word)
    np.testing.assert_allclose(page_state(browser, "setting"), shown, rtol=1e-5, atol=1e-5)
    expected = np.asarray(response.reference_response_db(shown))
    drawn = drawn_curve_db(browser)
    shown = np.abs(expected) < CURVE["max_db"]  # the page clips the curve to +-15 dB
    # path coordinates carry 3 decimals: 5e-4 px is 6e-5 dB; float32 settings add ~1e-4 dB
    np.testing.assert_allclose(drawn[shown], expected[shown], atol=2e-3)
    handles = browser.find_elements(By.CSS_SELECTOR, "#handles circle")
    assert len(handles) == 5
    assert browser.current_url.split("#")[1].startswith(f"term={word}")


def test_a_word_shows_what_the_command_line_gives_and_centre_its_centre(browser, system):
    """One meaning per word: the page shows the setting `neuraleq generate WORD -n 1` gives;
    the centre button the one `--centre` gives."""
    word = system.vocabulary[2]
    set_word(browser, word)
    np.testing.assert_allclose(
        page_state(browser, "setting"), word_setting(system, word), rtol=1e-5, atol=1e-5
    )
    browser.find_element(By.ID, "centre").click()
    wait_for(browser, f"window.neuraleq.state.label === {json.dumps(word + ' (centre)')}")
    np.testing.assert_allclose(
        page_state(browser, "setting"), centre_setting(system, word), rtol=1e-5, atol=1e-5
    )
    assert shown_status(browser) == (f"{word}: its centre setting", False)
    assert "centre=1" in browser.current_url


def test_reroll_is_seeded_and_shareable(browser, system, base_url):
    word = system.vocabulary[0]
    set_word(browser, word)
    browser.find_element(By.ID, "reroll").click()
    wait_for(browser, f"window.neuraleq.state.label === {json.dumps(word + ' #1')}")
    expected = system.generate_eq_from_semantic(word, 1, seed=1, as_array=True)[0]
    np.testing.assert_allclose(page_state(browser, "setting"), expected, rtol=1e-5, atol=1e-5)
    assert "seed=1" in browser.current_url and "centre=0" in browser.current_url


def test_export_buttons_write_every_format(browser, downloads):
    setting = np.array(page_state(browser, "setting"), np.float32)
    for fmt in presets.FORMATS:
        browser.execute_script("window.neuraleq.lastExport = null;")
        browser.find_element(By.CSS_SELECTOR, f"#export-buttons [data-format='{fmt}']").click()
        exported = wait_for(browser, "window.neuraleq.lastExport")
        assert exported["format"] == fmt
        found = presets.parse_preset_text(exported["text"])
        assert found.format == fmt
        np.testing.assert_allclose(found.settings[0], setting, atol=0.005 + 1e-3)
    deadline = time.monotonic() + 10
    while not list(downloads.glob("neuraleq-preset*.txt")) and time.monotonic() < deadline:
        time.sleep(0.1)
    saved = sorted(downloads.glob("neuraleq-preset*"))
    assert saved, "the browser saved no preset file"


# Answers to /morph for any pair but (from, to) come back late, as they can from a server that
# is compiling a new shape; counts the answers still out and those delayed.
DELAY_OTHER_MORPHS = """
const [from, to, delayMs] = arguments;
const realFetch = window.fetch;
Object.assign(window, { realFetch, morphsOut: 0, lateMorphs: 0 });
window.fetch = async (url, init) => {
  if (url !== "/api/morph") return realFetch(url, init);
  const body = JSON.parse(init.body);
  window.morphsOut += 1;
  try {
    const reply = await realFetch(url, init);
    if (body.from !== from || body.to !== to) {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      window.lateMorphs += 1;
    }
    return reply;
  } finally {
    window.morphsOut -= 1;
  }
};
"""


def test_morph_slider_shows_the_newest_pair_between_its_words(browser, system, base_url):
    word_a, word_b = system.vocabulary[2], system.vocabulary[3]
    browser.execute_script(DELAY_OTHER_MORPHS, word_a, word_b, 1500)
    try:
        # 'from' changes first, so the page also asks for (word_a, the old 'to'): answered late
        for field, word in (("morph-from", word_a), ("morph-to", word_b)):
            element = browser.find_element(By.ID, field)
            element.clear()
            element.send_keys(word, Keys.TAB)
        drag_slider(browser, (0.25, 0.5))
        position = wait_for_morph_label(browser, word_a, word_b)
        wait_for(browser, "window.morphsOut === 0")
        assert browser.execute_script("return window.lateMorphs") >= 1  # a stale answer came
    finally:
        browser.execute_script("if (window.realFetch) window.fetch = window.realFetch;")
    assert wait_for_morph_label(browser, word_a, word_b) == position  # and did not take over
    assert 0.3 < position < 0.7  # dragged to about the middle
    step = round(position * (MORPH_STEPS - 1))
    served = post(
        base_url,
        "/morph",
        {"from": word_a, "to": word_b, "steps": MORPH_STEPS, "include": ["response"]},
    )
    np.testing.assert_array_equal(page_state(browser, "setting"), served["settings"][step])
    np.testing.assert_array_equal(page_state(browser, "responseDb"), served["response_db"][step])
    expected = system.morph_between_terms(word_a, word_b, steps=MORPH_STEPS, as_array=True)
    np.testing.assert_allclose(page_state(browser, "setting"), expected[step], rtol=1e-5, atol=1e-5)
    # the slider's ends are the two words' own settings (float32 round-off of the decoder)
    slider = browser.find_element(By.ID, "morph-position")
    for key, word, end in ((Keys.HOME, word_a, 0.0), (Keys.END, word_b, 1.0)):
        slider.send_keys(key)
        assert wait_for_morph_label(browser, word_a, word_b) == end
        np.testing.assert_allclose(
            page_state(browser, "setting"), centre_setting(system, word), rtol=1e-5, atol=1e-5
        )


def map_point_in_viewport(driver, xy):
    """Viewport (CSS px) coordinates of a point in the word map's own units."""
    return driver.execute_script(
        "const p = new DOMPoint(arguments[0], arguments[1])"
        ".matrixTransform(document.getElementById('map').getScreenCTM());"
        "return [p.x, p.y];",
        *xy,
    )


def drag_target(words, word_a):
    """(word_b, fraction, length): a point that fraction of the way from word_a toward word_b
    has word_b clearly nearest among the other words (so the page morphs toward it); of those,
    the word_b farthest from word_a (length, in map units)."""
    a = np.array([words[word_a]["x"], words[word_a]["y"]])
    best = None
    for word_b, entry in words.items():
        b = np.array([entry["x"], entry["y"]])
        length = np.hypot(*(b - a))
        for fraction in (0.75, 0.65, 0.85, 0.55):
            point = a + fraction * (b - a)
            distances = sorted(
                (np.hypot(*(point - [w["x"], w["y"]])), name)
                for name, w in words.items()
                if name != word_a
            )
            clear = distances[0][1] == word_b and distances[1][0] - distances[0][0] > 6
            if clear and fraction * length > words[word_a]["r"] + 6:
                if best is None or length > best[2]:
                    best = (word_b, fraction, length)
                break
    return best


def test_map_drag_morphs_toward_the_nearest_word(browser, system):
    if not browser.find_element(By.ID, "map-panel").is_displayed():
        pytest.skip("this model has no word map (word_map)")
    browser.execute_script("document.getElementById('map').scrollIntoView({block: 'center'})")
    words = {w["word"]: w for w in page_state(browser, "mapWords")}
    word_a = system.vocabulary[2]
    found = drag_target(words, word_a)
    assert found, f"no word is clearly nearest part-way from {word_a} on this map"
    word_b, fraction, length = found
    a, b = (np.array([words[w]["x"], words[w]["y"]]) for w in (word_a, word_b))
    start, middle, end = (
        np.array(map_point_in_viewport(browser, xy)) for xy in (a, a + fraction * (b - a), b)
    )
    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(*np.round(start).astype(int).tolist()).pointer_down()
    for step in (0.5, 1.0):  # the pointer leaves word_a's dot on the way
        actions.pointer_action.move_to_location(
            *np.round(start + step * (middle - start)).astype(int).tolist()
        )
    actions.perform()
    position = wait_for_morph_label(browser, word_a, word_b)
    # the pointer lands on whole CSS pixels: up to ~1 px off the line's point, in map units
    units_per_px = 400 / browser.find_element(By.ID, "map").size["width"]
    assert abs(position - fraction) < 2 * units_per_px / length + 1 / (MORPH_STEPS - 1)
    morph = system.morph_between_terms(word_a, word_b, steps=MORPH_STEPS, as_array=True)
    np.testing.assert_allclose(
        page_state(browser, "setting"),
        morph[round(position * (MORPH_STEPS - 1))],
        rtol=1e-5,
        atol=1e-5,
    )
    # onto word_b's dot: the morph's end, word_b's own setting
    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(*np.round(end).astype(int).tolist()).pointer_up()
    actions.perform()
    assert wait_for_morph_label(browser, word_a, word_b) == 1.0
    np.testing.assert_allclose(
        page_state(browser, "setting"), centre_setting(system, word_b), rtol=1e-5, atol=1e-5
    )
    # a click without a drag picks the word
    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(*np.round(start).astype(int).tolist()).click()
    actions.perform()
    wait_for(browser, f"window.neuraleq.state.label === {json.dumps(word_a)}")
    np.testing.assert_allclose(
        page_state(browser, "setting"), word_setting(system, word_a), rtol=1e-5, atol=1e-5
    )


def multisine(path: Path, rate: int = 48_000, seconds: int = 2):
    """Tones on exact 1 Hz FFT bins (log-spaced 40 Hz-16 kHz), random phases, 24-bit WAV."""
    freqs = np.unique(np.round(np.geomspace(40, 16_000, 48)))
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, len(freqs))
    t = np.arange(rate * seconds) / rate
    signal = np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]).sum(axis=0)
    soundfile.write(path, 0.5 * signal / np.abs(signal).max(), rate, subtype="PCM_24")
    return freqs


def test_audio_through_the_page_matches_the_response(browser, system, tmp_path):
    # the word whose setting filters most, so the check means something
    word = max(
        system.vocabulary,
        key=lambda w: np.ptp(response.reference_response_db(centre_setting(system, w))),
    )
    set_word(browser, word)
    freqs = multisine(tmp_path / "tones.wav")
    browser.find_element(By.ID, "audio-file").send_keys(str(tmp_path / "tones.wav"))
    wait_for(browser, "!document.getElementById('play').disabled")
    rendered = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.neuraleq.audio.renderOffline().then(done, (e) => done(String(e)));"
    )
    assert isinstance(rendered, dict), rendered
    rate = rendered["rate"]
    # the last second: whole periods of every tone, after the filters' transients have died
    tail_in, tail_out = (np.array(rendered[k][-rate:]) for k in ("input", "output"))
    bins = freqs.astype(int)
    measured = 20 * np.log10(
        np.abs(np.fft.rfft(tail_out)[bins]) / np.abs(np.fft.rfft(tail_in)[bins])
    )
    setting = np.array(page_state(browser, "setting"), np.float32)
    expected = np.asarray(response.magnitude_response_db(setting, freqs.astype(np.float32), rate))
    assert np.ptp(expected) > 1.0  # a setting that audibly filters, so the check means something
    error_db = np.abs(measured - expected).max()
    print(f"page audio vs response: largest difference {error_db:.4f} dB over {len(bins)} tones")
    assert error_db < 0.5


def test_playback_ab_and_live_changes_raise_no_console_errors(browser, system):
    browser.find_element(By.ID, "play").click()
    wait_for(browser, "document.getElementById('play').textContent === 'stop'")
    browser.find_element(By.ID, "bypass").click()
    set_word(browser, system.vocabulary[0])  # coefficients change while playing
    browser.find_element(By.ID, "bypass").click()
    time.sleep(0.3)
    browser.find_element(By.ID, "play").click()
    wait_for(browser, "document.getElementById('play').textContent === 'play'")
    assert browser.find_element(By.ID, "status").get_attribute("class") != "error"
    if os.environ.get("NEURALEQ_SCREENSHOT"):
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(os.environ["NEURALEQ_SCREENSHOT"])
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    browser.execute_script("console.error('the console log is read')")  # the check can fail
    assert any("the console log is read" in e["message"] for e in browser.get_log("browser"))


# Holds the page's /api/vocabulary answer (its start-up's first step) until the test calls
# window.releaseStart().
HOLD_START = """
const realFetch = window.fetch;
const released = new Promise((resolve) => { window.releaseStart = resolve; });
window.fetch = async (url, init) => {
  const reply = await realFetch(url, init);
  if (url === "/api/vocabulary") await released;
  return reply;
};
"""


def test_input_during_start_up_is_applied_once_started(browser, system):
    """A user who picks a morph and drags before the page has started gets that morph (start-up
    neither drops the input nor overwrites the words with its defaults)."""
    word_a, word_b = system.vocabulary[4], system.vocabulary[5]
    script = browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": HOLD_START}
    )
    try:
        browser.refresh()
    finally:
        browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]}
        )
    for field, word in (("morph-from", word_a), ("morph-to", word_b)):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(word, Keys.TAB)
    drag_slider(browser, (0.25, 0.5))
    # the input really came early: start-up is still waiting for its first setting
    assert browser.execute_script("return document.documentElement.dataset.ready") is None
    assert not browser.find_element(By.ID, "map-panel").is_displayed()
    browser.execute_script("window.releaseStart();")
    assert (
        browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.neuraleq.ready.then(done, (e) => done(String(e)));"
        )
        is True
    )
    assert browser.execute_script("return document.documentElement.dataset.ready") == "true"
    position = wait_for_morph_label(browser, word_a, word_b)
    assert 0.3 < position < 0.7
    morph = system.morph_between_terms(word_a, word_b, steps=MORPH_STEPS, as_array=True)
    np.testing.assert_allclose(
        page_state(browser, "setting"),
        morph[round(position * (MORPH_STEPS - 1))],
        rtol=1e-5,
        atol=1e-5,
    )
    assert browser.find_element(By.ID, "status").get_attribute("class") != "error"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


READY = (
    "const done = arguments[arguments.length - 1];"
    "window.neuraleq.ready.then(done, (e) => done(String(e)));"
)
CURVE_X = {"width": 720, "left": 36, "right": 8}  # the page's horizontal drawing constants


def open_page(driver, url):
    """Load ``url`` afresh (not a same-document move to another #fragment), as opening a link
    does; return what start-up resolved ``window.neuraleq.ready`` with (``True`` once ready)."""
    driver.get("about:blank")
    driver.get(url)
    return driver.execute_async_script(READY)


def api_get(base_url, path):
    with urllib.request.urlopen(base_url + "/api" + path, timeout=60) as reply:
        return json.load(reply)


def shown_status(driver):
    """(text, is it an error?) of the page's status line."""
    status = driver.find_element(By.ID, "status")
    return status.text, "error" in status.get_attribute("class").split()


def link_params(driver):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(driver.current_url).fragment))


@pytest.mark.parametrize("kind", ["unknown word", "over-long term"])
def test_a_link_with_a_bad_term_opens_a_working_page_that_says_why(browser, system, base_url, kind):
    limit = api_get(base_url, "")["limits"]["term_chars"]
    term, named = {
        "unknown word": ("calido", "'calido'"),
        "over-long term": ("x" * 5000, f"5000 characters long; a term has 1-{limit}"),
    }[kind]
    assert term not in system.vocabulary
    assert open_page(browser, f"{base_url}/#term={term}") is True
    assert browser.execute_script("return document.documentElement.dataset.ready") == "true"
    assert (
        browser.find_element(By.ID, "map-panel").is_displayed()
        == api_get(base_url, "/vocabulary")["has_map"]
    )
    first = system.vocabulary[0]
    text, is_error = shown_status(browser)
    assert is_error and named in text and f"showing '{first}' instead" in text
    assert "\n" not in text and len(text) < 400
    np.testing.assert_allclose(
        page_state(browser, "setting"), word_setting(system, first), rtol=1e-5, atol=1e-5
    )
    assert link_params(browser)["term"] == first  # the URL says what is shown
    # the page works: a word typed and set is shown, and the error is gone
    set_word(browser, system.vocabulary[1])
    assert shown_status(browser) == (f"{system.vocabulary[1]}: variation 0", False)


def drag_handle(driver, band, offset_px):
    """Drag band's handle (1-5) by ``offset_px`` (dx, dy) CSS px in four moves and release it;
    return the (Hz, dB) the page puts the band at for where the pointer stopped (its own
    mapping of the curve, rounded as it rounds: 4 significant digits, 0.01 dB, band ranges)."""
    handle = driver.find_element(By.CSS_SELECTOR, f"#handles circle[data-band='{band}']")
    start = np.array(
        driver.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "return [r.x + r.width / 2, r.y + r.height / 2];",
            handle,
        )
    )
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(*np.round(start).astype(int).tolist()).pointer_down()
    for step in (0.25, 0.5, 0.75, 1.0):
        stop = np.round(start + step * np.asarray(offset_px)).astype(int).tolist()
        actions.pointer_action.move_to_location(*stop)
    actions.pointer_action.pointer_up()
    actions.perform()
    x, y = map_point_in_curve(driver, stop)
    ranges = page_state(driver, "layout")[band - 1]
    plot = CURVE_X["width"] - CURVE_X["left"] - CURVE_X["right"]
    hz = float(np.clip(20 * 1000 ** ((x - CURVE_X["left"]) / plot), *ranges["freq_range"]))
    half = (CURVE["height"] - CURVE["top"] - CURVE["bottom"]) / 2
    db = float(np.clip(CURVE["max_db"] * (1 - (y - CURVE["top"]) / half), *ranges["gain_range"]))
    return float(f"{hz:.4g}"), round(db, 2)


def map_point_in_curve(driver, xy):
    """A viewport point (CSS px) in the curve's own viewBox units."""
    return driver.execute_script(
        "const p = new DOMPoint(arguments[0], arguments[1])"
        ".matrixTransform(document.getElementById('curve').getScreenCTM().inverse());"
        "return [p.x, p.y];",
        *xy,
    )


def drag_and_wait(driver, band, offset_px):
    """Drag a handle (see drag_handle) and wait until the page shows the band where the pointer
    stopped (float32, as the page keeps settings); return the shown setting."""
    hz, db = drag_handle(driver, band, offset_px)
    moved = np.float32([db, hz])
    WebDriverWait(driver, 30, poll_frequency=0.05).until(
        lambda d: np.array_equal(
            np.float32(page_state(d, "setting")[3 * band - 3 : 3 * band - 1]), moved
        )
    )
    return np.array(page_state(driver, "setting"))


def test_an_error_clears_when_the_next_action_succeeds(browser, system, base_url):
    assert open_page(browser, f"{base_url}/#term={system.vocabulary[0]}") is True
    field = browser.find_element(By.ID, "term")
    field.clear()
    field.send_keys("nope", Keys.ENTER)
    wait_for(browser, "document.getElementById('status').className === 'error'")
    assert "unknown word 'nope'" in shown_status(browser)[0]
    before = np.array(page_state(browser, "setting"))
    drag_handle(browser, 2, (-30, -25))
    WebDriverWait(browser, 30).until(
        lambda d: not np.array_equal(page_state(d, "setting")[3:5], before[3:5])
    )
    after = np.array(page_state(browser, "setting"))
    text, is_error = shown_status(browser)
    assert not is_error and text.startswith("edited band 2: ")
    changed = np.flatnonzero(after != before)
    assert set(changed) <= {3, 4} and len(changed) > 0  # only band 2's gain and Hz moved


def press(driver, *keys):
    """Press keys together (a shortcut) where the page has its focus."""
    chain = ActionChains(driver)
    for key in keys[:-1]:
        chain.key_down(key)
    chain.send_keys(keys[-1])
    for key in reversed(keys[:-1]):
        chain.key_up(key)
    chain.perform()


def setting_in_link(driver):
    text = link_params(driver).get("setting")
    return None if text is None else np.float32([float(v) for v in text.split(",")])


def test_drags_undo_and_redo_one_drag_at_a_time_and_the_link_keeps_the_edit(
    browser, system, base_url
):
    word = system.vocabulary[1]
    assert open_page(browser, f"{base_url}/#term={word}") is True
    assert browser.find_element(By.ID, "undo").get_attribute("disabled") == "true"
    original = np.array(page_state(browser, "setting"))
    assert setting_in_link(browser) is None  # a word's own setting: the word says it
    first = drag_and_wait(browser, 2, (40, -30))
    second = drag_and_wait(browser, 4, (-30, 35))
    # the URL carries the edited setting, exactly (shortest float32 digits)
    WebDriverWait(browser, 10).until(lambda d: setting_in_link(d) is not None)
    WebDriverWait(browser, 10).until(lambda d: np.array_equal(setting_in_link(d), second))
    # undo goes back a whole drag at a time (Ctrl+Z, then the button); redo comes forward
    steps = [
        (lambda: press(browser, Keys.CONTROL, "z"), first),
        (lambda: browser.find_element(By.ID, "undo").click(), original),
        (lambda: press(browser, Keys.CONTROL, Keys.SHIFT, "z"), first),
        (lambda: press(browser, Keys.CONTROL, "y"), second),
    ]
    for act, expected in steps:
        act()
        WebDriverWait(browser, 10).until(
            lambda d, e=expected: np.array_equal(page_state(d, "setting"), e)
        )
        in_link = setting_in_link(browser)
        if expected is original:
            assert in_link is None and link_params(browser)["term"] == word
        else:
            np.testing.assert_array_equal(in_link, expected)
    assert browser.find_element(By.ID, "redo").get_attribute("disabled") == "true"
    # the link reproduces what is shown: the setting, its curve, its table, its word
    shown = {
        "path": browser.find_element(By.ID, "response-path").get_attribute("d"),
        "table": browser.find_element(By.ID, "bands").text,
        "term": browser.find_element(By.ID, "term").get_attribute("value"),
    }
    assert open_page(browser, browser.current_url) is True
    np.testing.assert_array_equal(page_state(browser, "setting"), second)
    assert shown == {
        "path": browser.find_element(By.ID, "response-path").get_attribute("d"),
        "table": browser.find_element(By.ID, "bands").text,
        "term": browser.find_element(By.ID, "term").get_attribute("value"),
    }
    assert not shown_status(browser)[1]


@pytest.mark.parametrize("kind", ["out of range", "too few numbers"])
def test_a_link_with_a_bad_setting_falls_back_to_its_word(browser, system, base_url, kind):
    word = system.vocabulary[2]
    numbers = [f"{v:.6g}" for v in centre_setting(system, word)]
    if kind == "out of range":
        numbers[3] = "40"  # band2_gain: gains lie within +-12 dB
        named = 'band2_gain "40" is not a number from -12 to 12'
    else:
        numbers = numbers[:14]
        named = "setting has 14 numbers; a setting is 15"
    assert open_page(browser, f"{base_url}/#term={word}&setting={','.join(numbers)}") is True
    text, is_error = shown_status(browser)
    assert is_error and named in text and f"showing '{word}' instead" in text
    np.testing.assert_allclose(
        page_state(browser, "setting"), word_setting(system, word), rtol=1e-5, atol=1e-5
    )
    assert setting_in_link(browser) is None and link_params(browser)["term"] == word


def test_strength_reaches_the_apis_limit(browser, system, base_url):
    limit = api_get(base_url, "")["limits"]["strength"]
    assert limit == 4.0  # docs/webapp.md: strength 0-4, as on the command line
    word = system.vocabulary[3]
    assert open_page(browser, f"{base_url}/#term={word}") is True
    slider = browser.find_element(By.ID, "strength")
    assert float(slider.get_attribute("max")) == limit
    slider.send_keys(Keys.END)
    wait_for(browser, f"window.neuraleq.state.strength === {limit}")
    expected = paramspace.scale_gains(word_setting(system, word), limit, xp=np)
    np.testing.assert_allclose(page_state(browser, "setting"), expected, rtol=1e-5, atol=1e-5)
    assert float(link_params(browser)["strength"]) == limit
    assert browser.find_element(By.ID, "strength-value").text == f"{limit:.2f}"


def ten_filter_preset(path: Path) -> str:
    """An AutoEQ-style APO file: ten peaks, not one filter per band, so it needs fitting."""
    lines = ["Preamp: -6.0 dB"] + [
        f"Filter {i + 1}: ON PK Fc {hz:.0f} Hz Gain {gain:.1f} dB Q 1.41"
        for i, (hz, gain) in enumerate(zip(np.geomspace(31, 16_000, 10), np.linspace(-4, 5, 10)))
    ]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def test_a_preset_that_needs_fitting_names_the_pages_box(browser, base_url, tmp_path):
    ten_filter_preset(tmp_path / "autoeq.txt")
    assert open_page(browser, f"{base_url}/") is True
    assert not browser.find_element(By.ID, "fit").is_selected()
    browser.find_element(By.ID, "preset-file").send_keys(str(tmp_path / "autoeq.txt"))
    wait_for(browser, "document.getElementById('status').className === 'error'")
    text = shown_status(browser)[0]
    assert text.startswith("autoeq.txt: ") and 'tick "fit other layouts"' in text
    assert "fit=True" not in text and "--fit" not in text and '"fit": true' not in text


def test_the_same_preset_file_imports_again_after_ticking_fit(browser, base_url, tmp_path):
    text = ten_filter_preset(tmp_path / "autoeq.txt")
    assert open_page(browser, f"{base_url}/") is True
    file_input = browser.find_element(By.ID, "preset-file")
    file_input.send_keys(str(tmp_path / "autoeq.txt"))
    wait_for(browser, "document.getElementById('status').className === 'error'")
    browser.find_element(By.ID, "fit").click()
    file_input.send_keys(str(tmp_path / "autoeq.txt"))  # the same file, picked again
    wait_for(browser, "document.getElementById('status').textContent.startsWith('imported ')")
    assert shown_status(browser)[0].startswith("imported autoeq.txt")
    fitted = post(base_url, "/presets/import", {"text": text, "fit": True})["settings"][0]
    np.testing.assert_allclose(page_state(browser, "setting"), fitted, rtol=1e-6, atol=1e-6)
    assert not shown_status(browser)[1]


def test_the_page_fits_a_420_px_window(browser, base_url, tmp_path):
    """No sideways scrolling at 420 CSS px, with the longest status line (a refused link); the
    screenshot is for a person to look at."""
    metrics = {"width": 420, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        assert open_page(browser, f"{base_url}/#term={'x' * 300}") is True
        sizes = browser.execute_script(
            "return [window.innerWidth, document.scrollingElement.scrollWidth,"
            " document.scrollingElement.scrollHeight];"
        )
        assert sizes[0] == 420
        assert sizes[1] <= sizes[0], f"the page is {sizes[1]} px wide in a 420 px window"
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {**metrics, "height": sizes[2]}
        )
        browser.save_screenshot(str(tmp_path / "page-420px.png"))
        print(f"screenshot: {tmp_path / 'page-420px.png'}")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
