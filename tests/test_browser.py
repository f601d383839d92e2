"""GraphiQL in a real browser (headless Chromium), with every other host unreachable:
the page loads its assets from the hub itself, runs a `models` query and shows the result.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
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
from modelci.core.domain import (
    DynamicProfileResult,
    InfoTuple,
    Measurement,
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


# Resolves once the frontier scatter shows `count` dots, with what a reader would notice.
SCATTER = """(count) => new Promise(resolve => {
  const look = () => {
    const svg = document.querySelector('#frontier-plots svg[data-device]');
    const dots = svg ? svg.querySelectorAll('circle[data-model]') : [];
    if (dots.length < count) { requestAnimationFrame(look); return; }
    const ticks = which => Array.from(svg.querySelectorAll(`text[data-tick="${which}"]`), t => ({
      value: Number(t.dataset.value), label: t.textContent,
      x: Number(t.getAttribute('x')), y: Number(t.getAttribute('y'))}));
    const box = svg.getBoundingClientRect();
    resolve({
      xScale: svg.dataset.xScale, yScale: svg.dataset.yScale, width: box.width,
      xTicks: ticks('x'), yTicks: ticks('y'),
      dots: Array.from(dots, d => ({
        model: d.dataset.model, batch: Number(d.dataset.batch),
        latency: Number(d.dataset.latency), throughput: Number(d.dataset.throughput),
        frontier: d.dataset.frontier === 'true',
        cx: Number(d.getAttribute('cx')), cy: Number(d.getAttribute('cy')),
        fill: getComputedStyle(d).fill, stroke: getComputedStyle(d).stroke,
        title: d.querySelector('title').textContent})),
      frontier: svg.querySelector('path[data-frontier-line]').getAttribute('d'),
      legend: Array.from(document.querySelectorAll('#frontier-plots [data-legend-model]'),
                         li => ({model: li.dataset.legendModel, text: li.textContent})),
      images: document.querySelectorAll('img').length,
      pwned: window.pwned === undefined ? null : String(window.pwned),
      section: (() => { const r = document.getElementById('frontier').getBoundingClientRect();
                        return {x: r.x, y: r.y + scrollY, width: r.width, height: r.height}; })(),
    });
  };
  look();
})"""

# What the dot's hover label says once the pointer is on it.
HOVERED = """(model, batch) => {
  const dot = document.querySelector(
    `#frontier-plots circle[data-model="${model}"][data-batch="${batch}"]`);
  dot.dispatchEvent(new MouseEvent('mouseenter'));
  const hover = dot.ownerSVGElement.querySelector('.hover');
  return {visible: hover.getAttribute('visibility'), text: hover.textContent};
}"""

# (architecture, engine, [(batch, p99 seconds, items/s, stable)]): 1 ms … 2 s, 4 … 20k/s.
SPREAD = [
    ("TinyNet", "TRT", [(1, 0.001, 1000, True), (8, 0.0025, 3200, True), (32, 0.008, 4000, True)]),
    ("MidNet", "TVM", [(1, 0.012, 83, True), (8, 0.04, 200, True), (32, 0.15, 213, False)]),
    ("BigNet", "NONE", [(1, 0.25, 4, True), (4, 0.9, 4.4, True), (8, 2.0, 4, True)]),
    ("WideNet", "CUSTOMIZED", [(16, 0.05, 9000, True), (64, 0.3, 20000, True)]),
    ('<img src=x onerror="window.pwned=1">', "NONE", [(2, 0.02, 30, True)]),
]


def spread_result(batch: int, p99: float, items: float, stable: bool) -> DynamicProfileResult:
    timing = InfoTuple(avg=p99 * 0.7, p50=p99 * 0.6, p95=p99 * 0.9, p99=p99)
    return DynamicProfileResult(
        ip="10.0.0.7",
        device_id="cuda:0",
        device_name="Tesla T4",
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
            inference_throughput=items,
            postprocess_throughput=1,
        ),
        measurement=Measurement(
            runtime="onnxruntime",
            intra_op_threads=4,
            samples=400,
            windows=10 if not stable else 4,
            stable=stable,
            iqr_over_median=0.3 if not stable else 0.02,
        ),
    )


def test_dashboard_scatter_reads_across_decades(tmp_path: Path, browser: int) -> None:
    """Latencies from 1 ms to 2 s: log axes with decade ticks on both, every model's dots
    spread over the plot (not one column at the left edge), named in a legend and on
    hover, the frontier drawn as a line through its dots, unstable dots hollow, and a
    hostile model name shown as text."""
    ids = {}
    with modelci_serve(tmp_path / "hub", free_port(), workers="0") as (hub, _):
        with ModelHub(hub) as client:
            for architecture, engine, results in SPREAD:
                model = client.register_model(
                    b"weights " + architecture.encode(),
                    architecture=architecture,
                    framework="PyTorch",
                    engine=engine,
                    version=1,
                    dataset="d",
                    task="Other",
                )
                ids[architecture] = model.id
                for result in results:
                    client.register_dynamic_profiling_result(model.id, spread_result(*result))
        count = sum(len(results) for _, _, results in SPREAD)
        with open_page(browser, f"{hub}/dashboard") as tools:
            seen = tools.evaluate(f"({SCATTER})({count})")
            hovered = tools.evaluate(f"({HOVERED})({json.dumps(ids['MidNet'])}, 32)")
            shot = tools.send("Page.captureScreenshot", captureBeyondViewport=True)["data"]
            (tmp_path / "scatter-hover.png").write_bytes(base64.b64decode(shot))
            tools.evaluate("document.querySelector('.hover').setAttribute('visibility', 'hidden')")
            section = seen["section"]
            screenshot = tools.send(
                "Page.captureScreenshot",
                captureBeyondViewport=True,
                clip={**section, "scale": 1},
            )["data"]
        (tmp_path / "scatter.png").write_bytes(base64.b64decode(screenshot))

    # Both axes logarithmic, labelled at each decade, in ms/s and items/s.
    assert (seen["xScale"], seen["yScale"]) == ("log", "log")
    x_labels = [t["label"] for t in seen["xTicks"]]
    assert x_labels == ["1 ms", "10 ms", "100 ms", "1 s"]
    assert [t["label"] for t in seen["yTicks"]] == ["10/s", "100/s", "1k/s", "10k/s"]
    for ticks, along in ((seen["xTicks"], "x"), (seen["yTicks"], "y")):
        steps = [b[along] - a[along] for a, b in itertools.pairwise(ticks)]
        assert max(steps) - min(steps) < 0.5, steps  # decades equally far apart: log scale

    # Every dot drawn where its latency lies on that log axis, spread over the width.
    dots = seen["dots"]
    assert sorted(d["model"] for d in dots) == sorted(
        ids[architecture] for architecture, _, results in SPREAD for _ in results
    )
    first, last = seen["xTicks"][0]["x"], seen["xTicks"][-1]["x"]
    for dot in dots:
        assert abs(dot["cx"] - (first + (last - first) * (math.log10(dot["latency"]) / 3))) < 1.5
    columns = {int(10 * (d["cx"] - first) / (last - first)) for d in dots}
    assert len(columns) >= 7, columns  # linear axes put all but two in the left column
    assert max(d["cx"] for d in dots) - min(d["cx"] for d in dots) > 0.6 * seen["width"]

    # A legend entry per model, by name and engine; its name on hover too.
    legend = {entry["model"]: entry["text"] for entry in seen["legend"]}
    for architecture, engine, _ in SPREAD:
        assert architecture in legend[ids[architecture]]
        assert engine in legend[ids[architecture]]
    assert hovered["visible"] == "visible"
    assert "MidNet · TVM · v1 · batch 32 · p99 150 ms" in hovered["text"]
    assert "unstable" in hovered["text"]

    # The frontier: TinyNet's three batches, then WideNet's two, joined by one line.
    on_frontier = sorted((d for d in dots if d["frontier"]), key=lambda d: d["latency"])
    assert [(d["model"], d["batch"]) for d in on_frontier] == [
        (ids["TinyNet"], 1),
        (ids["TinyNet"], 8),
        (ids["TinyNet"], 32),
        (ids["WideNet"], 16),
        (ids["WideNet"], 64),
    ]
    vertices = [tuple(map(float, step[1:].split(","))) for step in seen["frontier"].split()]
    assert vertices == [(d["cx"], d["cy"]) for d in on_frontier]

    # Unstable: hollow in its model's colour; settled dots filled.
    (unstable,) = [d for d in dots if d["model"] == ids["MidNet"] and d["batch"] == 32]
    assert unstable["fill"] == "rgb(255, 255, 255)" and unstable["stroke"] != unstable["fill"]
    assert "unstable" in unstable["title"]
    assert all(d["fill"] == d["stroke"] for d in dots if d is not unstable)

    # The hostile name is text: no element made from it, no script run.
    assert seen["images"] == 0 and seen["pwned"] is None


# Resolves with what a reader sees of a model's card once its description is drawn.
CARD = """(model) => new Promise(resolve => {
  const look = () => {
    const card = document.querySelector(`#models [data-model="${model}"]`);
    const described = card && card.querySelector('[data-field="description"]');
    if (!described) { requestAnimationFrame(look); return; }
    const field = name => card.querySelector(`[data-field="${name}"]`).innerText;
    resolve({
      text: card.innerText,
      status: field('status'), weight: field('weight'), metrics: field('metrics'),
      tags: Array.from(card.querySelectorAll('[data-field="tags"] .tag'), t => t.textContent),
      params: field('params'), staticProfile: field('static'), source: field('source'),
      createdBy: field('created-by'),
      description: described.innerText,
      bold: Array.from(described.querySelectorAll('strong'), b => b.textContent),
      code: Array.from(described.querySelectorAll('code'), c => c.textContent),
      items: Array.from(described.querySelectorAll('li'), li => li.textContent),
      links: Array.from(card.querySelectorAll('a'), a => ({text: a.textContent, href: a.href})),
      made: Array.from(card.querySelectorAll('script, img, iframe, svg, object'), e => e.tagName),
      pwned: window.pwned === undefined ? null : String(window.pwned),
    });
  };
  look();
})"""

DESCRIPTION = """Trained on **ImageNet** with `SGD`.
Second line.

- random crops
- 90 epochs

<script>window.pwned = 'script'</script> <img src=x onerror="window.pwned = 'img'">

[the paper](https://arxiv.org/abs/1512.03385) and [a trap](javascript:window.pwned='link')"""


def test_dashboard_cards_show_metadata_and_the_static_profile(tmp_path: Path, browser: int) -> None:
    """A card shows what the registrant said (metrics, tags, params, source, who, the
    description as a little Markdown) and what the hub knows (status, weight size, the
    static profile); a description holding markup is shown as text and runs nothing."""
    weight = b"weights of a described network"
    with modelci_serve(tmp_path / "hub", free_port(), workers="0") as (hub, _):
        with ModelHub(hub) as client:
            model = client.register_model(
                weight,
                architecture="CardNet",
                framework="PyTorch",
                engine="NONE",
                dataset="ImageNet",
                task="Image_Classification",
                model_status=["PUBLISHED"],
                metrics={"acc": 0.91, "top5": 0.97},
                params={"lr": 0.1},
                tags={"team": "vision", "stage": "prod"},
                description=DESCRIPTION,
                source="https://mlflow.example/#/runs/abc",
                run_id="abc",
            )
            client.register_static_profiling_result(
                model.id,
                {
                    "parameters": 11_689_512,
                    "flops": 1_824_033_792,
                    "memory": 46_758_048,
                    "mread": 1,
                    "mwrite": 1,
                    "mrw": 2,
                },
            )
        with open_page(browser, f"{hub}/dashboard") as tools:
            card = tools.evaluate(f"({CARD})({json.dumps(model.id)})")
            screenshot = tools.send("Page.captureScreenshot", captureBeyondViewport=True)["data"]
        (tmp_path / "card.png").write_bytes(base64.b64decode(screenshot))

    assert card["status"] == "PUBLISHED"
    assert card["weight"].startswith(f"{len(weight)} bytes")
    assert card["metrics"] == "acc 0.91 · top5 0.97"
    assert sorted(card["tags"]) == ["stage=prod", "team=vision"]
    assert card["params"] == "lr=0.1"
    assert card["staticProfile"] == "11.7 M parameters · 1.82 GFLOPs · memory 44.6 MiB"
    assert card["source"] == "https://mlflow.example/#/runs/abc (run abc)"
    assert card["createdBy"] == "anonymous"

    # The Markdown subset: bold, code, a list, line breaks, an https link.
    assert card["bold"] == ["ImageNet"] and card["code"] == ["SGD"]
    assert card["items"] == ["random crops", "90 epochs"]
    assert "Trained on ImageNet with SGD.\nSecond line." in card["description"]
    assert {"text": "the paper", "href": "https://arxiv.org/abs/1512.03385"} in card["links"]
    # Markup is text: nothing made from it, nothing run, no javascript: link.
    assert "<script>window.pwned = 'script'</script>" in card["description"]
    assert "<img src=x onerror=\"window.pwned = 'img'\">" in card["description"]
    assert "[a trap](javascript:window.pwned='link')" in card["description"]
    assert all(link["href"].startswith("https://") for link in card["links"])
    assert card["made"] == [] and card["pwned"] is None
