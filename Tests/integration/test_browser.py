"""A real browser: headless Chromium loads the page `make run` serves,
over http and over https, and uses its echo and chat panels as a person
would. Over https Chromium opens the WebSockets as HTTP/2 streams (the
server advertises RFC 8441), which the access log shows."""

import json
import urllib.request

import pytest

from browser import Chromium
from conftest import serve

BOTH_OPEN = ("document.getElementById('echo-status').textContent === 'open'"
             " && document.getElementById('chat-status').textContent === 'open'")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory, tls=True)


@pytest.fixture(scope="module")
def browser():
    # The self-signed certificate is accepted as a user would click through.
    chromium = Chromium("--ignore-certificate-errors")
    yield chromium
    chromium.close()


@pytest.fixture
def open_tab(browser):
    """Opens tabs that close when the test ends."""
    tabs = []

    def open_one(url):
        tabs.append(browser.open_tab(url))
        return tabs[-1]
    yield open_one
    for tab in tabs:
        tab.close()


def page_urls(server):
    return {"http": f"http://127.0.0.1:{server.port}/", "https": f"https://127.0.0.1:{server.tls_port}/"}


def log_contains(element, text):
    return f"document.getElementById('{element}').textContent.includes({text!r})"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_echo_panel(server, open_tab, scheme):
    tab = open_tab(page_urls(server)[scheme])
    tab.wait_for(BOTH_OPEN)
    tab.submit("echo", f"hello from chromium over {scheme}")
    tab.wait_for(log_contains("echo-log", f"echo: hello from chromium over {scheme}"))
    assert tab.text("echo-log").split("\n")[:2] == [
        f"sent: hello from chromium over {scheme}", f"echo: hello from chromium over {scheme}"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_two_tabs_chat(server, open_tab, scheme):
    url = page_urls(server)[scheme]
    alice, bob = open_tab(url), open_tab(url)
    for name, tab in (("alice", alice), ("bob", bob)):
        # The room echoes to the sender too: seeing its own greeting means
        # the tab's connection has joined.
        tab.wait_for(BOTH_OPEN)
        tab.submit("chat", f"{name} joined ({scheme})")
        tab.wait_for(log_contains("chat-log", f"{name} joined ({scheme})"))
    alice.submit("chat", f"alice says hi ({scheme})")
    bob.wait_for(log_contains("chat-log", f"alice says hi ({scheme})"))
    bob.submit("chat", f"bob answers ({scheme})")
    alice.wait_for(log_contains("chat-log", f"bob answers ({scheme})"))
    # Everyone in the room, the sender included, sees both in order.
    for tab in (alice, bob):
        lines = tab.text("chat-log").split("\n")
        assert lines.index(f"alice says hi ({scheme})") < lines.index(f"bob answers ({scheme})")


def test_https_page_uses_websockets_over_http2(server, browser):
    echo, chat = '"GET /echo HTTP/2.0" 101', '"GET /chat HTTP/2.0" 101'
    before = {line: server.access_log.count(line) for line in (echo, chat)}
    tab = browser.open_tab(page_urls(server)["https"])
    tab.wait_for(BOTH_OPEN)
    assert tab.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
    tab.close()  # ends the WebSockets, and httpd logs their requests
    for line, count in before.items():
        server.wait_for_access_log(line, more_than=count)


def server_totals(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics?format=json", timeout=10) as response:
        return json.loads(response.read())["total"]


def shows(element, value):
    return f"document.getElementById('{element}').textContent === {str(value)!r}"


def test_server_panel_shows_what_the_server_counts(server, open_tab):
    tab = open_tab(page_urls(server)["http"])
    tab.wait_for(BOTH_OPEN)
    for i in range(3):
        tab.submit("echo", f"counted {i}")
        tab.wait_for(log_contains("echo-log", f"echo: counted {i}"))
    # Nothing else talks to the server now: the page catches up with it
    # within a poll or two.
    totals = server_totals(server)
    assert totals["Connections"] >= 2  # this tab's echo and chat at least
    tab.wait_for(shows("stats-connections", totals["Connections"]))
    tab.wait_for(shows("stats-messages-in", totals["MessagesIn"]))
    tab.wait_for(shows("stats-messages-out", totals["MessagesOut"]))
    # The chart has a point a second after the first.
    tab.wait_for("document.getElementById('stats-line').getAttribute('points').split(' ').length >= 2")
    assert float(tab.text("stats-rate")) >= 0
