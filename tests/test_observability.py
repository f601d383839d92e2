"""Operations people run the hub with: Prometheus metrics and structured logs."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import httpx
from conftest import Api, modelci_serve
from test_jobs import PROFILE
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.server.embedded import free_port
from modelci.server.http import (
    LOG_FORMAT,
    JsonLogFormatter,
    RequestLogFilter,
    TextLogFormatter,
    request_id_var,
)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (labels in any order)."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


async def test_metrics_count_operations_requests_and_jobs(api: Api) -> None:
    model = await api.register()
    for _ in range(3):
        await api.data(PROFILE, {"modelId": model["id"]})
    await api.post("query Named { models { nodes { id } } }")
    await api.post('{ model(id: "nope") { id } }')
    await api.http.get(f"/models/{model['id']}/weight")

    text = (await api.http.get("/metrics")).text
    labels = {"operation": "profileModel", "type": "mutation", "outcome": "ok"}
    assert sample(text, "modelci_graphql_operations_total", **labels) == 3
    failed = {"operation": "model", "type": "query", "outcome": "error"}
    assert sample(text, "modelci_graphql_operations_total", **failed) == 1
    named = {"operation": "models", "type": "query", "outcome": "ok"}
    assert sample(text, "modelci_graphql_operations_total", **named) == 1
    assert (
        sample(text, "modelci_graphql_operation_seconds_count", operation="models", type="query")
        == 1
    )
    download = {"route": "/models/{model_id}/weight", "method": "GET", "status": "200"}
    assert sample(text, "modelci_http_requests_total", **download) == 1
    assert sample(text, "modelci_jobs", kind="PROFILE", status="QUEUED") == 3
    assert sample(text, "modelci_job_queue_depth") == 3


async def test_made_up_root_fields_share_one_label(api: Api) -> None:
    before = len((await api.http.get("/metrics")).content)
    for number in range(200):
        await api.post("{ madeUp%d { id } }" % number)
        await api.post("mutation { madeUp%d }" % number)
    text = (await api.http.get("/metrics")).text
    assert "madeUp" not in text
    unknown = {"operation": "unknown", "type": "query", "outcome": "error"}
    assert sample(text, "modelci_graphql_operations_total", **unknown) == 200
    # Two labels more (unknown query and mutation), whatever the 400 names were.
    assert len(text) < before + 8_000


def test_json_logs_carry_the_request_id() -> None:
    record = logging.LogRecord(
        "modelci.test", logging.WARNING, __file__, 1, "hello %s", ("world",), None
    )
    token = request_id_var.set("abc123")
    try:
        RequestLogFilter().filter(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(JsonLogFormatter().format(record))
    assert entry["message"] == "hello world"
    assert entry["request_id"] == "abc123"
    assert entry["level"] == "WARNING" and entry["logger"] == "modelci.test"


def test_an_idle_workers_polls_stay_out_of_the_access_log(tmp_path: Path) -> None:
    """A served hub's own worker asks for a job every two seconds a lane; those answers
    ("no job") are not logged at INFO, while every other request still is, one that
    answers as a claim would included."""
    log: list[str] = []
    with modelci_serve(tmp_path, free_port(), log=log, auth="on", workers="1") as (url, _):
        tokens = {}
        for scope in ("admin", "read"):
            created = CliRunner().invoke(
                cli,
                ["token", "create", "--name", scope, "--scope", scope, "--data-dir", str(tmp_path)],
                env={"MODELCI_SERVER": None, "MODELCI_TOKEN": None},
            )
            assert created.exit_code == 0, created.output
            tokens[scope] = {"authorization": f"Bearer {created.stdout.strip()}"}

        def claims() -> float:
            metrics = httpx.get(f"{url}/metrics", headers=tokens["admin"]).text
            try:
                return sample(
                    metrics,
                    "modelci_graphql_operations_total",
                    operation="claimProfilingJob",
                    type="mutation",
                    outcome="ok",
                )
            except AssertionError:  # none yet
                return 0

        deadline = time.monotonic() + 120
        while claims() < 3:  # the worker's empty claims
            assert time.monotonic() < deadline, "".join(log)
            time.sleep(0.2)
        requests = {
            "query": "{ models { nodes { id } } }",
            "lookalike": '{ claimProfilingJob: __type(name: "Nope") { name } }',
        }
        for name, query in requests.items():
            headers = {**tokens["read"], "x-request-id": name}
            answer = httpx.post(f"{url}/graphql", json={"query": query}, headers=headers)
            assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
    posts = [line for line in log if "uvicorn.access" in line and "POST /graphql" in line]
    assert len(posts) == 2, "".join(log)  # the read token's two requests, no claim
    assert all(any(f"[{name}]" in line for line in posts) for name in requests), posts


def test_text_logs_carry_no_escape_sequences() -> None:
    """A conversion's error quotes what the uploaded model raised; an ESC or BEL in it once
    reached the terminal of whoever read `modelci serve`'s or the worker's log."""
    said = "forward failed: \x1b]0;PWNED\x07\x1b[2J\x9b31m"
    record = logging.LogRecord("modelci.worker", logging.INFO, __file__, 1, "%s", (said,), None)
    RequestLogFilter().filter(record)
    line = TextLogFormatter(LOG_FORMAT).format(record)
    assert line.endswith("forward failed: ]0;PWNED[2J31m")
    assert not any(character in line for character in "\x1b\x07\x9b")
