"""The layout editor (astarLayout in javascript/astar.js) in a real browser: headless Chromium on the gradio 3.41.2 test
page of ``tests/test_picker_browser.py`` (the A-STAR UI of both tabs, the WebUI's width/height sliders, and
boxes showing what gradio received).

Real mouse drags draw, move and resize boxes and the Layout field follows; typing in the field moves the boxes;
the keyboard reaches every box; a concept named like HTML is shown as text and runs nothing.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.test_picker_browser import SHOTS, XSS, nothing_ran, open_page, open_picker

CANVAS = "#script_{tab}_astar_layout_editor canvas.astar-layout-canvas"
FIELD = "#script_{tab}_astar_layout textarea"


def field(page, tab="txt2img"):
    return page.js(f'document.querySelector({json.dumps(FIELD.format(tab=tab))}).value')


def boxes(text):
    """``{concept: [x0, y0, x1, y1]}`` of a layout's short form."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        words = part.split()
        out[" ".join(words[:-4])] = [float(v) for v in words[-4:]]
    return out


def wait_field(page, check, what, tab="txt2img", timeout=10):
    """Waits until the Layout field, and what gradio received, satisfy ``check(boxes)``; returns the boxes."""
    def ok(text):
        try:
            return check(boxes(text))
        except (KeyError, ValueError, IndexError):
            return False

    page.wait(f'document.querySelector({json.dumps(FIELD.format(tab=tab))}).value !== undefined', timeout=timeout)
    deadline_text = None
    for _ in range(int(timeout / 0.1)):
        text = field(page, tab)
        seen = page.js(f'document.querySelector("#{tab}_layout_seen textarea").value')
        if ok(text) and seen == text:
            return boxes(text)
        deadline_text = (text, seen)
        page.pump(0.1)
    raise AssertionError(f"timed out waiting for {what}: field/gradio {deadline_text!r}")


def near(a, b, tol=0.011):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def entries(page, tab="txt2img"):
    return page.js(f"astarLayout.states.{tab}.entries.map(e => [e.concept, e.box])")


def pixel(page, tab, fx, fy):
    """RGB of the canvas at fractions ``(fx, fy)`` of its size."""
    return page.js(f"""(() => {{ const c = document.querySelector({json.dumps(CANVAS.format(tab=tab))});
        const d = c.getContext("2d").getImageData(Math.floor(c.width * {fx}), Math.floor(c.height * {fy}), 1, 1).data;
        return [d[0], d[1], d[2]]; }})()""")


def set_concepts(page, tab, text):
    page.type_text(f"#script_{tab}_astar_concepts textarea, #script_{tab}_astar_concepts input", text)


def open_layout(page, tab):
    open_picker(page, tab)
    page.click(f"#script_{tab}_astar_layout_panel .label-wrap")
    page.wait(f'document.querySelector({json.dumps(CANVAS.format(tab=tab))}).clientWidth > 100',
              what=f"the {tab} layout canvas to show")


def settle(page, selector):
    """Waits until the element's place on the page has not changed for a second (an opening accordion, the token
    picker's status above it changing after the concepts changed)."""
    last, same = None, 0
    for _ in range(200):
        now = page.rect(selector)
        same = same + 1 if now == last else 0
        if same >= 6:
            return
        last = now
        page.pump(0.15)
    raise AssertionError(f"{selector} kept moving")


def drag(page, selector, start, end):
    settle(page, selector)
    page.drag(selector, start, end)


@pytest.fixture
def page(webui):
    yield from open_page(webui)


def test_layout_editor_in_chromium(page):
    page.goto(page.url, "!!document.querySelector('#script_txt2img_astar_layout_editor canvas')", timeout=30)
    canvas = CANVAS.format(tab="txt2img")
    open_layout(page, "txt2img")
    set_concepts(page, "txt2img", "cat, dog")
    page.wait('document.querySelectorAll("#script_txt2img_astar_layout_editor .astar-layout-pick").length === 2',
              what="a button per concept")

    # a mouse drag draws the selected (first) concept's box, and the field follows
    drag(page, canvas, (0.10, 0.20), (0.40, 0.80))
    got = wait_field(page, lambda b: list(b) == ["cat"], "the cat box in the field")
    assert near(got["cat"], [0.10, 0.20, 0.40, 0.80]), got
    # key 2 on the canvas selects the second concept; its drag draws its box
    page.focus(canvas)
    page.press("2")
    drag(page, canvas, (0.55, 0.10), (0.95, 0.90))
    got = wait_field(page, lambda b: list(b) == ["cat", "dog"], "the dog box in the field")
    assert near(got["dog"], [0.55, 0.10, 0.95, 0.90]), got
    # dragging inside a box moves it; dragging a corner resizes it
    drag(page, canvas, (0.25, 0.50), (0.35, 0.45))
    got = wait_field(page, lambda b: near(b["cat"], [0.20, 0.15, 0.50, 0.75]), "the cat box moved")
    drag(page, canvas, (0.95, 0.90), (0.85, 0.70))
    got = wait_field(page, lambda b: near(b["dog"], [0.55, 0.10, 0.85, 0.70]), "the dog box resized")
    assert near(got["cat"], [0.20, 0.15, 0.50, 0.75])

    # typing in the field moves the boxes: the editor's state, its number fields and the canvas follow
    page.type_text(FIELD.format(tab="txt2img"), "cat 0.60 0.10 0.90 0.40; dog 0.05 0.50 0.45 0.95")
    page.wait('JSON.stringify(astarLayout.states.txt2img.entries.map(e => e.box)) === '
              '"[[0.6,0.1,0.9,0.4],[0.05,0.5,0.45,0.95]]"', what="the editor to follow the field")
    numbers = page.js('Array.from(document.querySelectorAll("#script_txt2img_astar_layout_editor .astar-layout-num"))'
                      '.map(n => n.value)')
    assert numbers == ["0.60", "0.10", "0.90", "0.40", "0.05", "0.50", "0.45", "0.95"], numbers
    page.pump(0.3)
    inside_cat, old_cat = pixel(page, "txt2img", 0.77, 0.27), pixel(page, "txt2img", 0.33, 0.33)
    assert inside_cat[0] > old_cat[0] + 30, (inside_cat, old_cat)  # cat's orange tint moved to its new place

    # keyboard: 1 selects cat, arrows move it, Alt+arrows move its bottom-right corner, Delete removes it
    page.focus(canvas)
    page.press("1")
    page.press("ArrowLeft")
    wait_field(page, lambda b: near(b["cat"], [0.59, 0.10, 0.89, 0.40], 1e-6), "the cat box moved left by a key")
    page.press("ArrowDown", "Shift")
    wait_field(page, lambda b: near(b["cat"], [0.59, 0.15, 0.89, 0.45], 1e-6), "the cat box moved by keys")
    page.press("ArrowRight", "Alt")
    wait_field(page, lambda b: near(b["cat"], [0.59, 0.15, 0.90, 0.45], 1e-6), "the cat box resized by keys")
    page.press("Delete")
    wait_field(page, lambda b: list(b) == ["dog"], "the cat box deleted")
    # the number fields are reachable and editable: Add box, then type x0 and leave the field
    page.click('#script_txt2img_astar_layout_editor button.astar-layout-act[aria-label="Add a box for cat"]')
    wait_field(page, lambda b: list(b) == ["dog", "cat"], "a box added for cat")
    page.type_text('#script_txt2img_astar_layout_editor input[aria-label="x0 of cat"]', "0.15")
    page.press("Tab")
    wait_field(page, lambda b: abs(b["cat"][0] - 0.15) < 1e-6, "x0 typed into the number field")
    page.click('#script_txt2img_astar_layout_editor button.astar-layout-act[aria-label="Delete the region of dog"]')
    wait_field(page, lambda b: list(b) == ["cat"], "the dog box deleted by its button")
    page.click("#script_txt2img_astar_layout_editor .astar-layout-clear")
    wait_field(page, lambda b: b == {}, "all boxes cleared")

    # a value written without an input event (pasted parameters, Send to img2img) is followed too
    page.js(f'document.querySelector({json.dumps(FIELD.format(tab="txt2img"))}).value = "dog 0.00 0.00 0.50 0.50"')
    page.wait('astarLayout.states.txt2img.entries.length === 1 && '
              'astarLayout.states.txt2img.entries[0].concept === "dog"', what="the editor to follow a pasted value")

    # the canvas takes the aspect ratio of the width and height
    for name, value in (("width", 1024), ("height", 512)):
        page.js(f'(() => {{ const el = document.querySelector("#txt2img_{name} input[type=number]");'
                f' el.value = {value}; el.dispatchEvent(new Event("input", {{bubbles: true}})); }})()')
    page.wait(f'(() => {{ const c = document.querySelector({json.dumps(canvas)});'
              f' return Math.abs(c.clientHeight / c.clientWidth - 0.5) < 0.02; }})()', what="a 2:1 canvas")
    if SHOTS:
        page.screenshot(os.path.join(SHOTS, "layout-standin.png"), "#script_txt2img_astar_layout_panel")

    # a concept named like HTML is text: in the buttons, the rows and on the canvas; nothing runs
    set_concepts(page, "txt2img", f"{XSS}, dog")
    page.wait('document.querySelectorAll("#script_txt2img_astar_layout_editor .astar-layout-pick").length === 2')
    page.focus(canvas)
    page.press("1")
    drag(page, canvas, (0.05, 0.55), (0.45, 0.95))
    wait_field(page, lambda b: XSS in b, "the HTML-named concept's box")
    names = page.js('Array.from(document.querySelectorAll("#script_txt2img_astar_layout_editor .astar-layout-name"))'
                    '.map(n => n.textContent)')
    assert names[:2] == [XSS, "dog"], names
    nothing_ran(page, "#script_txt2img_astar_layout_editor")

    # img2img has its own editor; the txt2img layout is untouched
    page.click("#tabs > .tab-nav > button:nth-child(2)")
    open_layout(page, "img2img")
    set_concepts(page, "img2img", "car, bird")
    page.wait('document.querySelectorAll("#script_img2img_astar_layout_editor .astar-layout-pick").length === 2')
    drag(page, CANVAS.format(tab="img2img"), (0.5, 0.5), (0.9, 0.9))
    got = wait_field(page, lambda b: list(b) == ["car"], "the img2img car box", tab="img2img")
    assert near(got["car"], [0.5, 0.5, 0.9, 0.9])
    assert XSS in boxes(field(page, "txt2img"))
    assert page.dialogs == [] and page.exceptions == [], (page.dialogs, page.exceptions)
