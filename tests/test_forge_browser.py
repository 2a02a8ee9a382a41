"""Opt-in tier: the A-STAR UI in a real running WebUI Forge page (gradio 4 on Forge main; gradio 3.41 on Forge
Classic), in headless Chromium (``tests/cdp.py``), and one generation started from that UI.

Set ``ASTAR_FORGE_URL`` (Forge started with ``--api``; see ``tests/test_forge_http.py``) to run it; without it the
test is skipped. ``ASTAR_FORGE_SHOTS`` names a folder that receives screenshots. The page must have the
extension installed and a model loaded; the generation is 2 steps at 256x256 (seconds per step on a CPU).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.test_layout_browser import drag, settle

URL = os.environ.get("ASTAR_FORGE_URL", "").rstrip("/")
CHROMIUM = os.environ.get("ASTAR_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("ASTAR_FORGE_SHOTS")
pytestmark = [pytest.mark.webui, pytest.mark.skipif(not URL, reason="ASTAR_FORGE_URL is not set")]

FIELD = "#script_{tab}_astar_concepts input, #script_{tab}_astar_concepts textarea"


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the browser test needs Debian's chromium (apt-get install -y chromium)")
    from tests.cdp import Chromium

    browser = Chromium(CHROMIUM, window=(1400, 1800), timeout=60)
    try:
        yield browser
    finally:
        browser.close()


def chips(page, tab):
    return page.js(f'Array.from(document.querySelectorAll("#script_{tab}_astar_picker .astar-chips > *"))'
                   '.map(e => e.textContent)')


def click_chip(page, tab, word):
    """A real click on the first chip of ``word`` (marked with a test-only attribute first)."""
    picker = f"#script_{tab}_astar_picker"
    page.js(f"""(() => {{ const b = Array.from(document.querySelectorAll("{picker} button.astar-chip"))
        .find(e => e.querySelector(".astar-chip-text").textContent === {json.dumps(word)});
        b.setAttribute("data-astar-test", "pick"); }})()""")
    page.click(f'{picker} button.astar-chip[data-astar-test="pick"]')
    page.js(f'document.querySelector("{picker} [data-astar-test]")?.removeAttribute("data-astar-test")')


def set_number(page, elem_id, value):
    page.type_text(f"#{elem_id} input[type=number]", str(value))
    page.press("Tab")


def load_a_model():
    """Forge main loads the checkpoint at the first generation (until then the picker says that no model is loaded):
    one tiny generation through the API."""
    import urllib.request

    payload = {"prompt": "a", "steps": 1, "width": 64, "height": 64}
    req = urllib.request.Request(URL + "/sdapi/v1/txt2img", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=1800) as res:
        res.read()


def test_accordion_picker_and_a_generation_from_the_ui(page):
    load_a_model()
    page.goto(URL, "!!document.querySelector('#script_txt2img_astar_enabled')", timeout=240)
    assert page.js("!!document.querySelector('#script_img2img_astar_enabled')")

    # the accordion opens (its checkbox is the enable switch) and the picker shows the prompt's words
    page.click("#script_txt2img_astar_enabled .label-wrap")
    page.wait('document.querySelector("#script_txt2img_astar_picker").getClientRects().length > 0', timeout=20,
              what="the A-STAR accordion to open")
    if not page.js('document.querySelector("#script_txt2img_astar_enabled-visible-checkbox").checked'):
        page.click("#script_txt2img_astar_enabled-visible-checkbox")
    page.type_text("#txt2img_prompt textarea", "a (cat:1.2) and a dog BREAK on a sofa")
    page.wait('document.querySelectorAll("#script_txt2img_astar_picker .astar-chip-text").length === 8', timeout=60,
              what="the picker's chips")
    assert chips(page, "txt2img") == ["a#1", "cat#2", "and#3", "a#4", "dog#5", "BREAK", "on#78", "a#79", "sofa#80"]

    # clicking chips writes the concepts field
    click_chip(page, "txt2img", "cat")
    click_chip(page, "txt2img", "dog")
    page.wait(f'document.querySelector("{FIELD.format(tab="txt2img")}").value === "cat, dog"', timeout=20,
              what="the concepts field to read 'cat, dog'")
    assert page.exceptions == [] and page.dialogs == [], (page.exceptions, page.dialogs)
    if SHOTS:
        page.screenshot(os.path.join(SHOTS, "forge-accordion.png"))

    # a generation from the UI: the server got the field values (the infotext says what A-STAR did)
    page.type_text("#txt2img_prompt textarea", "a cat and a dog")
    set_number(page, "txt2img_steps", 2)
    set_number(page, "txt2img_width", 256)
    set_number(page, "txt2img_height", 256)
    page.click("#txt2img_generate")
    page.wait('document.querySelector("#html_info_txt2img")?.textContent.includes("A-STAR")', timeout=1500,
              what="the generation's infotext")
    info = page.js('document.querySelector("#html_info_txt2img").textContent')
    assert 'A-STAR concepts: "cat, dog"' in info and "A-STAR passes: 1" in info, info  # quoted: it has a comma
    assert "A-STAR error" not in info and "A-STAR skipped" not in info, info
    # Forge Classic's own page throws in gradio's Blocks when the width changes (also without this extension),
    # so only the extension's scripts are checked from here on
    assert [e for e in page.exceptions if "astar" in e] == [] and page.dialogs == [], (page.exceptions, page.dialogs)
    if SHOTS:
        page.screenshot(os.path.join(SHOTS, "forge-generated.png"))


LAYOUT_CANVAS = "#script_txt2img_astar_layout_editor canvas.astar-layout-canvas"
LAYOUT_FIELD = "#script_txt2img_astar_layout textarea"


def test_layout_editor_draws_a_box_on_forges_page(page):
    """Layout mode's editor (astarLayout in javascript/astar.js) on Forge's own page: it appears in the A-STAR
    accordion, takes the concepts, and a real mouse drag on its canvas draws the first concept's box and writes
    the Layout field (the script's argument)."""
    page.goto(URL, "!!document.querySelector('#script_txt2img_astar_layout_editor')", timeout=240)
    page.click("#script_txt2img_astar_enabled .label-wrap")
    page.wait('document.querySelector("#script_txt2img_astar_picker").getClientRects().length > 0', timeout=20,
              what="the A-STAR accordion to open")
    settle(page, "#script_txt2img_astar_layout_panel .label-wrap")  # the opening accordion moves it
    page.click("#script_txt2img_astar_layout_panel .label-wrap")
    page.wait(f'document.querySelector({json.dumps(LAYOUT_CANVAS)})?.clientWidth > 100', timeout=20,
              what="the layout canvas to show")
    page.type_text(FIELD.format(tab="txt2img"), "cat, dog")
    page.wait('document.querySelectorAll("#script_txt2img_astar_layout_editor .astar-layout-pick").length === 2',
              timeout=20, what="a button per concept")
    drag(page, LAYOUT_CANVAS, (0.10, 0.20), (0.40, 0.80))  # once the canvas has stopped moving
    page.wait(f'document.querySelector({json.dumps(LAYOUT_FIELD)}).value.startsWith("cat ")', timeout=20,
              what="the cat box in the Layout field")
    words = page.js(f'document.querySelector({json.dumps(LAYOUT_FIELD)}).value').split()
    box = [float(v) for v in words[1:5]]
    assert words[0] == "cat" and all(abs(a - b) <= 0.011 for a, b in zip(box, [0.10, 0.20, 0.40, 0.80])), words
    assert page.js("astarLayout.states.txt2img.entries.map(e => e.concept)") == ["cat"]
    # the canvas has the tab's aspect ratio (Forge main's default 512x640 is taller than the editor's height cap)
    ratio = page.js('(() => { const h = Number(document.querySelector("#txt2img_height input[type=number]").value),'
                    ' w = Number(document.querySelector("#txt2img_width input[type=number]").value);'
                    f' const c = document.querySelector({json.dumps(LAYOUT_CANVAS)});'
                    ' return [h / w, c.clientHeight / c.clientWidth]; })()')
    assert abs(ratio[0] - ratio[1]) < 0.02, ratio
    assert [e for e in page.exceptions if "astar" in e] == [] and page.dialogs == [], (page.exceptions, page.dialogs)
    if SHOTS:
        page.screenshot(os.path.join(SHOTS, "forge-layout.png"), "#script_txt2img_astar_layout_panel")
