"""A small synchronous client of the Chrome DevTools protocol, for the browser test (test code only).

It starts Debian's headless ``chromium`` with a fresh profile, attaches to its page over the pinned
``websockets`` (11.x: ``websockets.sync.client``) and offers what the test needs: navigate, evaluate, wait for
a condition, real keyboard and mouse input (``Input.*``: the page sees trusted events, as from a user), and a
record of JavaScript dialogs (``alert``/``confirm``/``prompt``), which are dismissed so that the page never
blocks. Why not Playwright: its browser download does not work in closed networks, its Python package pins
its own Chromium revision, and the DevTools protocol is all the test needs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from websockets.sync.client import connect

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--remote-debugging-port=0", "--remote-allow-origins=*",
)


class CDPError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium process and a DevTools session on its first page."""

    def __init__(self, executable: str, window: tuple[int, int] = (1280, 1400), timeout: float = 30.0):
        self.profile = tempfile.mkdtemp(prefix="astar-chromium-")
        self.log_path = os.path.join(self.profile, "chromium.log")
        self.dialogs: list[dict[str, Any]] = []
        self.console: list[str] = []
        self.exceptions: list[str] = []
        self._next_id = 0
        self.ws = None
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={window[0]},{window[1]}",
                 "about:blank"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            port = self._port(timeout)
            deadline = time.monotonic() + timeout
            page = None
            while page is None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as res:
                    page = next((t for t in json.load(res) if t.get("type") == "page"), None)
                if page is None:
                    if time.monotonic() > deadline:
                        raise CDPError("chromium opened no page")
                    time.sleep(0.1)
            self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
            for domain in ("Page.enable", "Runtime.enable"):
                self.send(domain)
        except BaseException:
            self.close()
            raise

    def _port(self, timeout: float) -> int:
        """The DevTools port chromium chose (it writes it to ``DevToolsActivePort`` in the profile)."""
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited with {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(path):
                lines = open(path).read().split()
                if lines and lines[0].isdigit():
                    return int(lines[0])
            time.sleep(0.05)
        raise CDPError(f"chromium did not open its DevTools port in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # protocol ------------------------------------------------------------------------------------------------
    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        msg_id = self._next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CDPError(f"no answer to {method} in {timeout} s")
            msg = json.loads(self.ws.recv(timeout=remaining))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(params)
            self._next_id += 1  # dismiss it without waiting: the page is blocked until then
            self.ws.send(json.dumps({"id": self._next_id, "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": False}}))
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))

    def pump(self, seconds: float) -> None:
        """Handles events (dialogs, console) for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self._event(json.loads(self.ws.recv(timeout=remaining)))
            except TimeoutError:
                return

    # page ----------------------------------------------------------------------------------------------------
    def goto(self, url: str, ready: str, timeout: float = 30.0) -> None:
        """Opens ``url`` and waits until the JavaScript expression ``ready`` is true."""
        self.send("Page.navigate", url=url)
        self.wait(ready, timeout=timeout, what=f"{url} to be ready")

    def js(self, expression: str, await_promise: bool = False) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(f"{expression!r} threw {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 10.0, what: str | None = None) -> Any:
        """The value of ``expression`` once it is truthy (polled every 50 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what or expression}; last value "
                                     f"{value!r}; console: {self.console[-5:]}; exceptions: {self.exceptions[-5:]}")
            self.pump(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the first element matching ``selector``."""
        box = self.js(f"""(() => {{
            const el = (typeof gradioApp === "function" ? gradioApp() : document).querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: "center"}});
            const r = el.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height];
        }})()""")
        if not box or box[2] == 0 or box[3] == 0:
            raise AssertionError(f"nothing visible to click at {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def focus(self, selector: str) -> None:
        self.js(f"(typeof gradioApp === 'function' ? gradioApp() : document)"
                f".querySelector({json.dumps(selector)}).focus()")

    def type_text(self, selector: str, text: str) -> None:
        """Replaces the text of an input or textarea as typing would (trusted ``input`` events)."""
        self.js(f"(() => {{ const el = document.querySelector({json.dumps(selector)}); el.focus(); el.select(); }})()")
        if text:
            self.send("Input.insertText", text=text)
        else:
            self.press("Backspace")

    KEYS = {"Enter": (13, "Enter", "\r"), " ": (32, "Space", " "), "Backspace": (8, "Backspace", ""),
            "ArrowRight": (39, "ArrowRight", ""), "ArrowLeft": (37, "ArrowLeft", ""), "Tab": (9, "Tab", ""),
            "ArrowUp": (38, "ArrowUp", ""), "ArrowDown": (40, "ArrowDown", ""), "Delete": (46, "Delete", ""),
            **{str(d): (48 + d, f"Digit{d}", str(d)) for d in range(10)}}
    MODIFIERS = {"Alt": 1, "Ctrl": 2, "Meta": 4, "Shift": 8}

    def press(self, key: str, *modifiers: str) -> None:
        """A real key press (``modifiers``: "Alt", "Ctrl", "Meta", "Shift", held during it)."""
        code, name, text = self.KEYS[key]
        bits = sum(self.MODIFIERS[m] for m in modifiers)
        down = {"type": "keyDown" if text else "rawKeyDown", "key": key, "code": name, "windowsVirtualKeyCode": code,
                "modifiers": bits}
        if text:
            down["text"] = text
        self.send("Input.dispatchKeyEvent", **down)
        self.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=name, windowsVirtualKeyCode=code,
                  modifiers=bits)

    def rect(self, selector: str) -> list[float]:
        """``[left, top, width, height]`` of the first element matching ``selector``, scrolled into view."""
        box = self.js(f"""(() => {{
            const el = (typeof gradioApp === "function" ? gradioApp() : document).querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: "center"}});
            const r = el.getBoundingClientRect();
            return [r.left, r.top, r.width, r.height];
        }})()""")
        if not box or box[2] == 0 or box[3] == 0:
            raise AssertionError(f"nothing visible at {selector!r}")
        return box

    def drag(self, selector: str, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        """A real mouse drag inside the element ``selector``, from ``start`` to ``end`` given as fractions of its
        width and height (press, ``steps`` moves with the button held, release)."""
        left, top, width, height = self.rect(selector)
        x0, y0 = left + start[0] * width, top + start[1] * height
        x1, y1 = left + end[0] * width, top + end[1] * height
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
        self.send("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, button="left", buttons=1, clickCount=1)
        for i in range(1, steps + 1):
            t = i / steps
            self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0 + (x1 - x0) * t, y=y0 + (y1 - y0) * t,
                      button="left", buttons=1)
        self.send("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, button="left", buttons=0,
                  clickCount=1)

    def screenshot(self, path: str, selector: str | None = None, padding: float = 8) -> None:
        """A PNG of the page, or of the element ``selector`` (with ``padding`` pixels around it)."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            left, top, width, height = self.rect(selector)
            sx, sy = self.js("[window.scrollX, window.scrollY]")  # the clip is in page coordinates
            params["clip"] = {"x": max(0, left + sx - padding), "y": max(0, top + sy - padding),
                              "width": width + 2 * padding, "height": height + 2 * padding, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
