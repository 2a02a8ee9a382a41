"""The token picker in a real browser: headless Chromium (Debian's ``chromium``) on a gradio 3.41.2 page.

The page is built the way the WebUI builds its own: the stand-in WebUI starts (``webui.start``: the A-STAR
script, its callbacks), a ``gr.Blocks`` holds a txt2img and an img2img tab, each with a prompt textbox
(``<tab>_prompt``), width and height sliders and the A-STAR script's UI from ``script.ui()``; every file of
``javascript/`` and ``style.css`` are put into every page's HTML by patching
``gradio.routes.templates.TemplateResponse`` (the WebUI's
``modules/ui_gradio_extensions.py`` mechanism; here inlined rather than served by ``file=`` links, whose
gradio check refuses paths under dot-directories), after a stand-in of the three ``script.js`` globals the
picker uses. The page is launched on 127.0.0.1 and the ``app_started`` callbacks add the route to its app.

A missing Chromium is a failure, not a skip: ``tests/run.sh`` installs it when run as root on Debian;
otherwise ``apt-get install chromium`` or deselect this file.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import time

import pytest

from astar_ext import params as P

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "scripts" / "astar.py")
CHROMIUM = os.environ.get("ASTAR_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("ASTAR_SHOTS")  # a folder: save screenshots of the page there

XSS = "<img src=x onerror=alert(1)>"

WEBUI_GLOBALS = """
// STAND-IN of the WebUI 1.10.1 script.js globals that javascript/astar.js uses (test page only).
function gradioApp() {
    const apps = document.getElementsByTagName("gradio-app");
    const app = apps.length ? apps[0] : document;
    return app.shadowRoot ? app.shadowRoot : app;
}
var standinUiLoaded = [], standinAfterUpdate = [], standinAfterTimer = null, standinLoadedDone = false;
function onUiLoaded(callback) { standinUiLoaded.push(callback); }
function onAfterUiUpdate(callback) { standinAfterUpdate.push(callback); }
document.addEventListener("DOMContentLoaded", function() {
    new MutationObserver(function() {
        if (!standinLoadedDone && document.querySelector("#txt2img_prompt")) {
            standinLoadedDone = true;
            standinUiLoaded.forEach(function(f) { f(); });
        }
        clearTimeout(standinAfterTimer);
        standinAfterTimer = setTimeout(function() { standinAfterUpdate.forEach(function(f) { f(); }); }, 200);
    }).observe(gradioApp(), {childList: true, subtree: true});
});
"""

PAGE = {"webui_globals": True}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inject(gr, webui_globals_js: str, extension_js: str, css: str):
    """Patches gradio's TemplateResponse like the WebUI; returns the original (restore it afterwards)."""
    original = gr.routes.templates.TemplateResponse

    def template_response(*args, **kwargs):
        res = original(*args, **kwargs)
        head = (f"<script>{webui_globals_js}</script>\n" if PAGE["webui_globals"] else "")
        head += f"<script>{extension_js}</script>\n"
        res.body = res.body.replace(b"</head>", f"{head}</head>".encode())
        res.body = res.body.replace(b"</body>", f"<style>{css}</style></body>".encode())
        res.init_headers()
        return res

    gr.routes.templates.TemplateResponse = template_response
    return original


def extension_js() -> str:
    """Every file of ``javascript/``, in name order (the WebUI loads them all)."""
    return "\n".join(path.read_text() for path in sorted((REPO / "javascript").glob("*.js")))


def build_page(webui, gr):
    """The test page: per tab a prompt box, the A-STAR UI and a box that shows what gradio received."""
    with gr.Blocks(analytics_enabled=False, title="A-STAR picker test",
                   theme=gr.themes.Default(font=["sans-serif"], font_mono=["monospace"])) as demo:
        with gr.Tabs(elem_id="tabs"):
            for tab in ("txt2img", "img2img"):
                with gr.Tab(tab, elem_id=f"tab_{tab}"):
                    gr.Textbox(label="Prompt", elem_id=f"{tab}_prompt", lines=3)
                    with gr.Row():  # as the WebUI's own sliders (elem_ids <tab>_width / <tab>_height)
                        gr.Slider(64, 2048, value=512, step=8, label="Width", elem_id=f"{tab}_width")
                        gr.Slider(64, 2048, value=512, step=8, label="Height", elem_id=f"{tab}_height")
                    script = webui.script("A-STAR", tab == "img2img")
                    controls = script.ui(tab == "img2img")
                    seen = gr.Textbox(label="concepts as gradio received them", elem_id=f"{tab}_concepts_seen")
                    controls[1].change(lambda value: value, inputs=[controls[1]], outputs=[seen])
                    layout = controls[[f.name for f in P.FIELDS].index("layout")]
                    layout_seen = gr.Textbox(label="layout as gradio received it", elem_id=f"{tab}_layout_seen")
                    layout.change(lambda value: value, inputs=[layout], outputs=[layout_seen])
    return demo


@pytest.fixture
def page(webui):
    yield from open_page(webui)


def open_page(webui):
    """The test page in a headless Chromium (a generator: the fixtures of the browser tests run it)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the browser test needs Debian's chromium (apt-get install -y chromium; "
                    "tests/run.sh installs it as root on Debian), or set ASTAR_CHROMIUM to another Chromium")
    import gradio as gr

    from tests.cdp import Chromium

    webui.start(SCRIPT)
    demo = build_page(webui, gr)
    original = _inject(gr, WEBUI_GLOBALS, extension_js(), (REPO / "style.css").read_text())
    browser = None
    try:
        port = _free_port()
        app, url, _ = demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                                  show_error=True)
        webui.script_callbacks.app_started_callback(demo, app)
        browser = Chromium(CHROMIUM)
        browser.url = url
        yield browser
    finally:
        if browser is not None:
            browser.close()
        gr.routes.templates.TemplateResponse = original
        demo.close()
        PAGE["webui_globals"] = True


def chip_texts(page, tab="txt2img"):
    return page.js(f"""Array.from(document.querySelectorAll("#script_{tab}_astar_picker .astar-chips > *"))
        .map(e => e.classList.contains("astar-chip") && e.tagName === "BUTTON"
                  ? e.querySelector(".astar-chip-text").textContent : e.textContent)""")


def concepts(page, tab="txt2img"):
    return page.js(f'document.querySelector("#script_{tab}_astar_concepts input, '
                   f'#script_{tab}_astar_concepts textarea").value')


def seen(page, tab="txt2img"):
    return page.js(f'document.querySelector("#{tab}_concepts_seen textarea").value')


def wait_seen(page, value, tab="txt2img"):
    page.wait(f'document.querySelector("#{tab}_concepts_seen textarea").value === {json.dumps(value)}',
              what=f"gradio to receive the concepts {value!r}")


def chip(tab, text, nth=0):
    """Selector of the ``nth`` chip button whose word is ``text``."""
    return (f"#script_{tab}_astar_picker button.astar-chip[data-astar-test='{text}-{nth}']")


def mark_chips(page, tab="txt2img"):
    """Gives each chip button a test-only attribute ``<word>-<occurrence>`` so that selectors can name it."""
    page.js(f"""(() => {{ const seen = {{}};
        document.querySelectorAll("#script_{tab}_astar_picker button.astar-chip").forEach(b => {{
            const t = b.querySelector(".astar-chip-text").textContent; seen[t] = (seen[t] || 0);
            b.setAttribute("data-astar-test", t + "-" + seen[t]++); }}); }})()""")


def pressed(page, tab, text, nth=0):
    return page.js(f'document.querySelector("{chip(tab, text, nth)}").getAttribute("aria-pressed")')


def open_picker(page, tab):
    page.click(f"#script_{tab}_astar_enabled .label-wrap")
    page.wait(f'document.querySelector("#script_{tab}_astar_picker").getClientRects().length > 0',
              what=f"the {tab} A-STAR accordion to open")


def type_prompt(page, tab, text, expect):
    page.type_text(f"#{tab}_prompt textarea", text)
    page.wait(f'(() => {{ const c = document.querySelectorAll("#script_{tab}_astar_picker .astar-chip-text");'
              f' return c.length && Array.from(c).map(e => e.textContent).join(" ") === {json.dumps(expect)}; }})()',
              timeout=10, what=f"chips {expect!r}")
    mark_chips(page, tab)


def nothing_ran(page, container):
    """After a second: no element was made from the HTML-looking text (in ``container`` or anywhere as the
    ``<img src=x>`` of :data:`XSS`) and no dialog opened."""
    page.pump(1.0)
    assert page.js(f'document.querySelectorAll({json.dumps(container + " img")}).length') == 0
    assert page.js('document.querySelectorAll("img[src=x]").length') == 0
    assert page.dialogs == [], page.dialogs


def test_picker_in_chromium(page):
    started = time.monotonic()
    page.goto(page.url, "!!document.querySelector('#script_txt2img_astar_picker .astar-chips')", timeout=30)

    # chips render for a prompt: whole words, emphasis stripped, BREAK, LoRA tag shown as such
    open_picker(page, "txt2img")
    type_prompt(page, "txt2img", "a (cat:1.3) and a hippopotamus BREAK a dog <lora:fancy:0.8>",
                "a cat and a hippopotamus a dog")
    texts = chip_texts(page)
    assert texts == ["<lora:fancy:0.8>", "a", "cat", "and", "a", "hippopotamus", "BREAK", "a", "dog"], texts
    assert page.js('document.querySelector("#script_txt2img_astar_picker .astar-chip-network").tagName') == "SPAN"
    assert page.js(f'document.querySelector("{chip("txt2img", "hippopotamus")} .astar-chip-cols").textContent') == \
        "#5-7"  # one chip for the three tokens of a split word
    assert page.js(f'document.querySelector("{chip("txt2img", "dog")} .astar-chip-cols").textContent') == "#79"

    # clicking toggles the word in the concepts field, and gradio receives the value
    page.click(chip("txt2img", "cat"))
    wait_seen(page, "cat")
    assert pressed(page, "txt2img", "cat") == "true"
    page.click(chip("txt2img", "dog"))
    wait_seen(page, "cat, dog")
    page.wait(f'document.querySelector("{chip("txt2img", "dog")}")?.getAttribute("aria-pressed") === "true"')
    page.click(chip("txt2img", "cat"))
    wait_seen(page, "dog")
    page.wait(f'document.querySelector("{chip("txt2img", "cat")}")?.getAttribute("aria-pressed") === "false"')

    # keyboard: focus a chip, arrows move, Enter and Space toggle
    mark_chips(page)
    page.focus(chip("txt2img", "a"))
    page.press("ArrowRight")
    assert page.js("document.activeElement.querySelector('.astar-chip-text').textContent") == "cat"
    page.press("Enter")
    wait_seen(page, "dog, cat")
    page.wait("document.activeElement?.querySelector?.('.astar-chip-text')?.textContent === 'cat'",
              what="the focus to stay on the chip after the refresh")
    page.press(" ")
    wait_seen(page, "dog")

    # the current concepts are highlighted, whatever wrote them (typing into the field)
    page.type_text("#script_txt2img_astar_concepts input, #script_txt2img_astar_concepts textarea", "hippopotamus")
    page.wait(f'document.querySelector("{chip("txt2img", "hippopotamus")}")?.getAttribute("aria-pressed") === "true"')
    mark_chips(page)
    assert pressed(page, "txt2img", "dog") == "false"

    # Suggest fills the field (the user can edit it afterwards)
    type_prompt(page, "txt2img", "a photo of a frog wearing a crown", "a photo of a frog wearing a crown")
    page.click("#script_txt2img_astar_suggest")
    wait_seen(page, "frog, crown")
    page.wait(f'document.querySelector("{chip("txt2img", "frog")}")?.getAttribute("aria-pressed") === "true"')
    if SHOTS:
        page.screenshot(os.path.join(SHOTS, "picker-standin.png"))

    # prompt text is text: an HTML prompt and an HTML-looking LoRA tag and concept run nothing
    type_prompt(page, "txt2img", f"{XSS} and a cat <lora:{XSS}:1>", "img src x onerror alert 1 and a cat 1")
    assert chip_texts(page)[:11] == [f"<lora:{XSS}", "<", "img", "src", "=", "x", "onerror", "=", "alert", "1", ">"]
    page.type_text("#script_txt2img_astar_concepts input, #script_txt2img_astar_concepts textarea", XSS)
    page.wait('document.querySelector("#script_txt2img_astar_picker .astar-status").textContent.includes("<img")',
              what="the concept warning")
    nothing_ran(page, "#script_txt2img_astar_picker")

    # img2img has its own picker
    page.click("#tabs > .tab-nav > button:nth-child(2)")
    open_picker(page, "img2img")
    type_prompt(page, "img2img", "a red car next to a blue bird", "a red car next to a blue bird")
    page.click(chip("img2img", "bird"))
    wait_seen(page, "bird", tab="img2img")
    page.click("#script_img2img_astar_suggest")
    wait_seen(page, "car, bird", tab="img2img")
    assert concepts(page) == XSS  # the txt2img field is untouched

    # without the WebUI's script.js globals (DOMContentLoaded + MutationObserver path)
    PAGE["webui_globals"] = False
    page.goto(page.url, "!!document.querySelector('#script_txt2img_astar_picker .astar-chips')", timeout=30)
    assert page.js("typeof gradioApp") == "undefined"
    open_picker(page, "txt2img")
    type_prompt(page, "txt2img", "a cat and a dog", "a cat and a dog")
    page.click(chip("txt2img", "dog"))
    wait_seen(page, "dog")

    assert page.dialogs == [] and page.exceptions == [], (page.dialogs, page.exceptions)
    assert time.monotonic() - started < 60
