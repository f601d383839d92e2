"""GraphiQL in a real browser (headless Chromium), with every other host unreachable:
the page loads its assets from the hub itself, runs a `models` query and shows the result.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import modelci_serve
from websockets.sync.client import ClientConnection, connect

from modelci.client import ModelHub
from modelci.schema.domain import (
    DynamicProfileResult,
    InfoTuple,
    ProfileLatency,
    ProfileMemory,
    ProfileThroughput,
)
from modelci.server.embedded import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Resolves in the page once GraphiQL has rendered its execute button.
RENDERED = """new Promise(resolve => {
  const look = () => document.querySelector('.graphiql-execute-button')
    ? resolve(true) : requestAnimationFrame(look);
  look();
})"""

# Resolves with the response pane's text once it mentions `wanted`.
ANSWERED = """(wanted) => new Promise(resolve => {
  const look = () => {
    const pane = document.querySelector('.graphiql-response');
    const text = pane ? pane.innerText : '';
    text.includes(wanted) ? resolve(text) : requestAnimationFrame(look);
  };
  look();
})"""


class DevTools:
    """Just enough of the Chrome DevTools Protocol: evaluate, screenshot."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv(timeout=60))
            if reply.get("id") == message_id:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")


@contextmanager
def open_page(browser: int, url: str) -> Iterator[DevTools]:
    """The browser's page, driven over DevTools, navigated to ``url``."""
    page = next(
        target
        for target in httpx.get(f"http://127.0.0.1:{browser}/json").json()
        if target["type"] == "page"
    )
    with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
        tools = DevTools(socket)
        tools.send("Page.enable")
        tools.send("Page.navigate", url=url)
        yield tools


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[int]:
    if CHROMIUM is None:
        pytest.fail("Chromium is needed for this test (.ci/run installs Debian's chromium)")
    port = free_port()
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--remote-debugging-port={port}",
            "--window-size=1400,900",
            # Offline: every host but this machine fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "about:blank",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:  # Chromium says when DevTools listens
        if "DevTools listening on" in line:
            break
    try:
        yield port
    finally:
        process.kill()
        process.wait()


def test_graphiql_runs_a_models_query_offline(tmp_path: Path, browser: int) -> None:
    with modelci_serve(tmp_path / "hub", free_port(), workers="0") as (hub, _):
        with ModelHub(hub) as client:
            model = client.register_model(
                b"weights",
                architecture="BrowserNet",
                framework="PyTorch",
                engine="NONE",
                version=1,
                dataset="d",
                task="Other",
            )
        query = "{ models { nodes { id architecture } } }"
        with open_page(browser, f"{hub}/graphql?q={quote(query)}") as tools:
            assert tools.evaluate(RENDERED) is True
            tools.evaluate("document.querySelector('.graphiql-execute-button').click()")
            shown = tools.evaluate(f"({ANSWERED})({json.dumps(model.id)})")
            screenshot = tools.send("Page.captureScreenshot")["data"]
        (tmp_path / "graphiql.png").write_bytes(base64.b64decode(screenshot))
    assert "BrowserNet" in shown


# The query editor's text, once GraphiQL has put one there.
EDITOR_TEXT = """new Promise(resolve => {
  const look = () => {
    const editor = document.querySelector('.graphiql-query-editor .CodeMirror');
    const text = editor ? editor.CodeMirror.getValue() : '';
    text ? resolve(text) : requestAnimationFrame(look);
  };
  look();
})"""


def test_graphiql_opens_on_a_query_that_runs_and_on_a_linked_query(
    tmp_path: Path, browser: int
) -> None:
    with modelci_serve(tmp_path / "hub", free_port(), workers="0") as (hub, _):
        with ModelHub(hub) as client:
            model = client.register_model(
                b"weights",
                architecture="StarterNet",
                framework="PyTorch",
                engine="NONE",
                version=3,
                dataset="d",
                task="Other",
            )
        with open_page(browser, f"{hub}/graphql") as tools:
            assert tools.evaluate(RENDERED) is True
            starter = tools.evaluate(EDITOR_TEXT)
            tools.evaluate("document.querySelector('.graphiql-execute-button').click()")
            shown = tools.evaluate(f"({ANSWERED})({json.dumps(model.id)})")
        assert "models(first: 10)" in starter
        assert "StarterNet" in shown and "Syntax Error" not in shown

        linked = '{ model(id: "%s") { architecture version } }' % model.id
        with open_page(browser, f"{hub}/graphql?query={quote(linked)}") as tools:
            assert tools.evaluate(RENDERED) is True
            assert tools.evaluate(EDITOR_TEXT) == linked
            tools.evaluate("document.querySelector('.graphiql-execute-button').click()")
            answered = tools.evaluate(f"({ANSWERED})('StarterNet')")
        assert '"version": 3' in answered

        # The same link from a script (no text/html asked for) is answered as JSON.
        body = httpx.get(f"{hub}/graphql", params={"query": linked}).json()
        assert body == {"data": {"model": {"architecture": "StarterNet", "version": 3}}}


DRAWN = """(model) => new Promise(resolve => {
  const look = () => {
    const curves = document.querySelectorAll(`[data-model="${model}"] path[data-series]`);
    if (curves.length) resolve(Array.from(curves, c => c.dataset.series));
    else requestAnimationFrame(look);
  };
  look();
})"""


def test_dashboard_plots_latency_and_throughput_per_device(tmp_path: Path, browser: int) -> None:
    with modelci_serve(tmp_path / "hub", free_port(), workers="0") as (hub, _):
        with ModelHub(hub) as client:
            model = client.register_model(
                b"weights",
                architecture="PlottedNet",
                framework="PyTorch",
                engine="NONE",
                version=1,
                dataset="d",
                task="Other",
            )
            for batch in (1, 2, 4, 8):
                client.register_dynamic_profiling_result(model.id, measured(batch))
        with open_page(browser, f"{hub}/dashboard") as tools:
            curves = tools.evaluate(f"({DRAWN})({json.dumps(model.id)})")
            screenshot = tools.send("Page.captureScreenshot")["data"]
        (tmp_path / "dashboard.png").write_bytes(base64.b64decode(screenshot))
    assert curves == ["cpu@10.0.0.9", "cpu@10.0.0.9"]  # latency and throughput


def measured(batch: int) -> DynamicProfileResult:
    timing = InfoTuple(avg=0.001 * batch, p50=0.001 * batch, p95=0.0012 * batch, p99=None)
    return DynamicProfileResult(
        ip="10.0.0.9",
        device_id="cpu",
        device_name="CPU",
        batch=batch,
        memory=ProfileMemory(total_memory=1, memory_usage=1, utilization=0.5),
        latency=ProfileLatency(
            initialization_latency=timing,
            preprocess_latency=timing,
            inference_latency=timing,
            postprocess_latency=timing,
        ),
        throughput=ProfileThroughput(
            batch_formation_throughput=1,
            preprocess_throughput=1,
            inference_throughput=1000.0,
            postprocess_throughput=1,
        ),
    )
