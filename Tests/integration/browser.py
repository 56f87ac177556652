"""Headless Chromium driven over the DevTools protocol: open tabs, run
JavaScript in them, read values back. Just enough of the protocol for the
browser tests; the connection to the browser is itself a WebSocket."""

import itertools
import json
import pathlib
import shutil
import subprocess
import tempfile
import time

from websockets.sync.client import connect


def chromium_path():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("no chromium on the PATH: scripts/install-test-deps installs it")
    return path


class Chromium:
    def __init__(self, *flags):
        self.profile = pathlib.Path(tempfile.mkdtemp(prefix="chromium-"))
        self.process = subprocess.Popen(
            [chromium_path(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-extensions", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", *flags, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Chromium writes its DevTools port and browser path once listening.
        active_port = self.profile / "DevToolsActivePort"
        for _ in range(300):
            if active_port.exists() and len(active_port.read_text().split("\n")) >= 2:
                break
            time.sleep(0.1)
        else:
            self.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        port, path = active_port.read_text().split("\n")[:2]
        self.devtools = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, legacy=True)
        self.ids = itertools.count(1)

    def command(self, method, session=None, **params):
        """Sends one DevTools command and returns its result; events that
        arrive meanwhile are ignored."""
        message = {"id": next(self.ids), "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.devtools.send(json.dumps(message))
        while True:
            reply = json.loads(self.devtools.recv(timeout=30))
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open_tab(self, url):
        """A tab in a browser context of its own, as another person's
        browser would be: its own cookies and its own connections. Tabs of
        one context would share one HTTP/2 connection, and mod_http2 runs
        only 6 streams of a new connection at once (h2_mplx.c
        processing_limit, raised as requests complete): a WebSocket stream
        never completes, so a seventh would wait."""
        context = self.command("Target.createBrowserContext")["browserContextId"]
        target = self.command("Target.createTarget", url=url, browserContextId=context)["targetId"]
        session = self.command("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        return Tab(self, context, target, session)

    def close(self):
        if getattr(self, "devtools", None):
            self.devtools.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    def __init__(self, browser, context, target, session):
        self.browser = browser
        self.context = context
        self.target = target
        self.session = session

    def close(self):
        """Closes the tab, and with it the page's WebSockets."""
        self.browser.command("Target.closeTarget", targetId=self.target)
        self.browser.command("Target.disposeBrowserContext", browserContextId=self.context)

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (awaited if it
        is a promise)."""
        result = self.browser.command("Runtime.evaluate", self.session, expression=expression,
                                      awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=10):
        """Polls until the expression is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None  # the page is still loading
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def submit(self, form, text):
        """Types text into a form's input and submits it, as a user would."""
        self.evaluate(f"""(() => {{
            document.getElementById({json.dumps(form + '-text')}).value = {json.dumps(text)};
            document.getElementById({json.dumps(form + '-form')}).requestSubmit();
        }})()""")

    def text(self, element_id):
        return self.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")
