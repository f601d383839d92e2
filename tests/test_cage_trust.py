"""What leaves the cage is data to check, never an instruction.

A pickled model (hub and worker both started to allow pickles) runs its own code in the
cage when it is unpickled: here that code writes crafted lines to the cage's message
channel, as a hostile upload would, naming host files, links out of its scratch folder,
engines nobody asked for, or lines that are no message at all. Through the real hub,
the real worker and the real cage, each conversion ends FAILED saying why, registers no
variant, and the host's secret shows up nowhere. Then the hub's own refusals, for a
worker token that skips the worker: a variant is registered only for a conversion job,
for one of its targets, of an engine whose files the hub reads, with bytes that pass
the upload's inspection.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from conftest import (
    PREFLIGHT,
    Api,
    model_input,
    modelci_env,
    modelci_serve,
    multipart,
    serving,
)
from networks import SmallConvNet
from starlette.applications import Starlette

from modelci.cage.runner import CageMessageRefused, bubblewrap, parsed_message
from modelci.core.identity import Scope
from modelci.profiling.worker import CageOutputRefused, opened_variant
from modelci.server.app import create_app
from modelci.server.embedded import free_port
from modelci.server.settings import Settings

pytestmark = pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed here")

CHECK = {
    "source_engine": "PYTORCH",
    "batch_sizes": [1, 4],
    "max_abs_diff": 0.0,
    "max_rel_diff": 0.0,
    "tolerance": 1e-4,
}
VECTOR = [{"name": "x", "shape": [-1, 4], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}]
SECRET = f"host-secret-{uuid.uuid4().hex}"

# Runs in the cage when the model is unpickled: the lines in LINES go out on the
# message channel (the cage program's, modelci.cage.program), after FIRST has run.
SAYS = """
import json, os, sys
channel = sys.modules["modelci.cage.program"].MESSAGES[0]
%(first)s
for line in %(lines)r:
    channel.write(line + "\\n")
channel.flush()
os._exit(0)
"""


class Payload:
    """Unpickling this runs ``code``: what a pickled upload can do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


def variant(engine: str, file: str) -> str:
    return json.dumps({"type": "variant", "engine": engine, "file": file, "check": CHECK})


def hostile(lines: list[str], first: str = "") -> bytes:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"payload-{uuid.uuid4().hex}.pt"
    torch.save(Payload(SAYS % {"first": first, "lines": lines}), path)
    try:
        return path.read_bytes()
    finally:
        path.unlink()


WORKER_FLAGS = ("--poll-seconds", "0.2", "--allow-pickle")


@contextmanager
def pickling_worker(hub: str, log: Path, **env: str) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "modelci.cli", "worker", "--server", hub, *WORKER_FLAGS],
        env={**modelci_env(), **env},
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        process.kill()
        process.wait()


def gql(hub: str, query: str, **variables: Any) -> dict[str, Any]:
    body = httpx.post(f"{hub}/graphql", json={"query": query, "variables": variables}).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def register_pickle(hub: str, content: bytes) -> str:
    query = (
        "mutation($input: ModelInput!, $weight: Upload!) "
        "{ registerModel(input: $input, weight: $weight) { id } }"
    )
    fields = model_input(
        architecture=f"Hostile-{uuid.uuid4().hex[:8]}", engine="PYTORCH", inputs=VECTOR, outputs=[]
    )
    request = multipart(query, {"input": fields}, {"weight": ("model.pt", content)})
    body = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, timeout=120, **request).json()
    assert not body.get("errors"), body
    model_id: str = body["data"]["registerModel"]["id"]
    return model_id


JOBS = """
query($id: ID!) {
  profilingJobs(modelId: $id) { nodes { id kind status error log { message } } }
}"""
CHILDREN = "query($id: ID!) { model(id: $id) { children { id engine } } }"


def finished_conversion(hub: str, model_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        (job,) = gql(hub, JOBS, id=model_id)["profilingJobs"]["nodes"]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"the conversion of {model_id} never finished: {job}")


def test_what_a_hostile_conversion_says_is_checked_and_refused(tmp_path: Path) -> None:
    secret_folder = tmp_path / "on-pythonpath"  # a folder the worker's sys.path names
    secret_folder.mkdir()
    secret = secret_folder / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    scratch_file = "/job/scratch/variant-onnx"
    write_variant = f"open({scratch_file!r}, 'wb').write(b'not a model')"
    attacks = {
        "an absolute path": ([variant("ONNX", str(secret))], "", "scratch folder"),
        "a symbolic link to a host file": (
            [variant("ONNX", "variant-onnx")],
            f"os.symlink({str(secret)!r}, {scratch_file!r})",
            "symbolic link",
        ),
        "a path out of the scratch folder": (
            [variant("ONNX", "../weight")],
            "",
            "scratch folder",
        ),
        "a CUSTOMIZED engine": (
            [variant("CUSTOMIZED", "variant-onnx")],
            write_variant,
            "not among the job's targets",
        ),
        "a TRT engine, which the hub cannot read": (
            [variant("TRT", "variant-onnx")],
            write_variant,
            "the hub can read and inspect",
        ),
        "bytes that are not what the engine says": (
            [variant("ONNX", "variant-onnx")],
            write_variant,
            "ONNX",
        ),
        "a line that is not JSON": (["{'type': 'variant'"], "", "not JSON"),
        "a message of another step": (
            [json.dumps({"type": "static", "result": {"parameters": 1}})],
            "",
            "which it may not",
        ),
        "a message with a field of its own": (
            [json.dumps({"type": "log", "message": "hi", "run": "rm -rf /"})],
            "",
            "malformed message",
        ),
        "a number that is not finite": (
            ['{"type": "dynamic", "batch": 1, "result": {"p99": NaN}, "sweep_stop": null}'],
            "",
            "malformed",
        ),
        # What the worker's PYTHONPATH names is not in the cage: this model reports
        # what it read, and can read nothing.
        "a log of the worker's PYTHONPATH folder": (
            [],
            "channel.write(json.dumps({'type': 'log', 'message': "
            f"open({str(secret)!r}).read()}})); channel.flush()",
            "",
        ),
    }
    log = tmp_path / "worker.log"
    server_log: list[str] = []
    with modelci_serve(
        tmp_path / "hub", free_port(), log=server_log, workers="0", allow_pickle="true"
    ) as (hub, _):
        models = {
            name: register_pickle(hub, hostile(lines, first))
            for name, (lines, first, _) in attacks.items()
        }
        with pickling_worker(hub, log, PYTHONPATH=str(secret_folder)):
            jobs = {name: finished_conversion(hub, model_id) for name, model_id in models.items()}
        for name, (_, _, said) in attacks.items():
            job = jobs[name]
            assert job["status"] == "FAILED", (name, job)
            assert said in job["error"], (name, job["error"])
            assert gql(hub, CHILDREN, id=models[name])["model"]["children"] == [], name
            assert SECRET not in json.dumps(job), name
        # The model that tried to read the secret failed for it, in the cage.
        pythonpath = jobs["a log of the worker's PYTHONPATH folder"]
        assert "FileNotFoundError" in pythonpath["error"] or "ermission" in pythonpath["error"]
        every_model = gql(hub, "{ models { nodes { id engine } } }")["models"]["nodes"]
        assert sorted(model["id"] for model in every_model) == sorted(models.values())
    assert SECRET not in log.read_text(errors="replace")
    assert SECRET not in "".join(server_log)


# The worker's checks, one message at a time


def test_a_line_from_the_cage_is_one_of_its_messages_or_refused() -> None:
    check = json.dumps(CHECK)
    refused = {
        b"not json": "not JSON",
        b'{"type": "shell", "command": "id"}': "malformed",
        b'{"type": "log"}': "malformed",
        b'{"type": "log", "message": "hi", "extra": 1}': "malformed",
        b'{"type": "log", "message": "%s"}' % (b"x" * 5000): "malformed",
        b'{"type": "plan", "batches": [1], "adaptive": false, "budget_s": Infinity, '
        b'"max_p99_latency_s": null}': "malformed",
        b'{"type": "variant", "engine": "ROOTKIT", "file": "v", "check": %s}'
        % check.encode(): "malformed",
        b'{"type": "static", "result": {"deep": %s}}' % (b"[" * 20000 + b"]" * 20000): "not JSON",
    }
    for line, said in refused.items():
        with pytest.raises(CageMessageRefused, match=said):
            parsed_message(line)
    fine = parsed_message(variant("ONNX", "variant-onnx").encode())
    assert fine["engine"] == "ONNX" and fine["file"] == "variant-onnx"


def test_a_variant_file_is_a_regular_file_directly_in_the_scratch_folder(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    (scratch / "variant-onnx").write_bytes(b"variant bytes")
    (scratch / "link").symlink_to(secret)
    (scratch / "folder").mkdir()
    os.mkfifo(scratch / "pipe")
    os.link(scratch / "variant-onnx", scratch / "twin")
    refusals = {
        str(secret): "scratch folder",
        "../secret.txt": "scratch folder",
        "folder/../../secret.txt": "scratch folder",
        "link": "symbolic link",
        "folder": "not a regular file",
        "pipe": "not a regular file",
        "twin": "not a regular file",
        "missing": "cannot be read",
    }
    for name, said in refusals.items():
        with pytest.raises(CageOutputRefused, match=said), opened_variant(scratch, name, 1024):
            pass
    os.unlink(scratch / "twin")
    with pytest.raises(CageOutputRefused, match="over"), opened_variant(scratch, "variant-onnx", 4):
        pass
    with opened_variant(scratch, "variant-onnx", 1024) as upload:
        assert upload.content.read() == b"variant bytes"  # type: ignore[union-attr]


# The hub's checks, for a worker token that talks to it directly

CLAIM = """
mutation($kinds: [JobKind!]) {
  claimProfilingJob(worker: "w1", kinds: $kinds,
    devices: [{host: "h", ip: "10.0.0.9", deviceId: "cpu", name: "CPU", kind: CPU,
               totalMemory: 1}]) { id kind targets }
}"""
CONVERTED = """
mutation($source: ID!, $engine: Engine!, $weight: Upload!, $job: ID, $worker: String) {
  registerConvertedModel(sourceId: $source, engine: $engine, weight: $weight, jobId: $job,
    worker: $worker, conversion: {sourceEngine: TORCHSCRIPT, batchSizes: [1],
                                  maxAbsDiff: 0, maxRelDiff: 0, tolerance: 0.0001}) { id }
}"""


@pytest.fixture
async def secured(
    settings: Settings, mongodb_url: str
) -> AsyncIterator[tuple[Api, dict[str, str]]]:
    app: Starlette = create_app(settings.model_copy(update={"auth": "on"}), mongodb_url=mongodb_url)
    async with serving(app) as api:
        store = app.state.services.tokens
        tokens = {scope.value: (await store.create(scope.value, [scope]))[1] for scope in Scope}
        yield api, tokens


async def test_the_hub_registers_a_variant_only_for_its_conversion_job(
    secured: tuple[Api, dict[str, str]], onnx_model: Path
) -> None:
    api, tokens = secured
    scripted = io.BytesIO()
    torch.jit.save(torch.jit.trace(SmallConvNet().eval(), torch.randn(2, 3, 16, 16)), scripted)
    inputs = [{"name": "input", "shape": [-1, 3, 16, 16], "dtype": "TYPE_FP32"}]

    async def post(token: str, query: str, variables: dict[str, Any], files: Any = None) -> Any:
        api.http.headers["authorization"] = f"Bearer {tokens[token]}"
        try:
            return await api.post(query, variables, files)
        finally:
            del api.http.headers["authorization"]

    registered = await post(
        "write",
        "mutation($input: ModelInput!, $weight: Upload!) { registerModel(input: $input, "
        "weight: $weight, profile: true) { id } }",
        {"input": model_input(engine="TORCHSCRIPT", inputs=inputs, outputs=[])},
        {"weight": ("net.pt", scripted.getvalue())},
    )
    source = registered["data"]["registerModel"]["id"]
    onnx = onnx_model.read_bytes()

    async def refusal(engine: str, job: str | None, weight: bytes = onnx) -> str:
        variables = {
            "source": source,
            "engine": engine,
            "job": job,
            "worker": "w1" if job else None,
        }
        body = await post("worker", CONVERTED, variables, {"weight": ("variant", weight)})
        assert body.get("errors") and body["data"] is None, body
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        message: str = error["message"]
        return message

    # A worker token without a job: a variant is the work of a conversion job.
    assert "jobId" in await refusal("ONNX", None)
    # A profiling job is no conversion.
    profiling = (await post("worker", CLAIM, {"kinds": ["PROFILE"]}))["data"]["claimProfilingJob"]
    assert "CONVERT" in await refusal("ONNX", profiling["id"])
    conversion = (await post("worker", CLAIM, {"kinds": ["CONVERT"]}))["data"]["claimProfilingJob"]
    assert conversion["targets"] == ["ONNX", "TRT"]
    # An engine the job did not ask for, and engines whose files the hub does not read.
    assert "converts to ONNX, TRT, not PYTORCH" in await refusal("PYTORCH", conversion["id"])
    for unreadable in ("TRT", "CUSTOMIZED"):
        assert "read and inspect" in await refusal(unreadable, conversion["id"])
    # Bytes that are not what the engine says: the upload's own inspection refuses them.
    assert "ONNX" in await refusal("ONNX", conversion["id"], b"just some text\n" * 10)
    children = "query($id: ID!) { model(id: $id) { children { engine } } }"
    body = await post("read", children, {"id": source})
    assert body["data"]["model"]["children"] == []

    # The real thing, for the job that asked for it, is registered.
    variables = {"source": source, "engine": "ONNX", "job": conversion["id"], "worker": "w1"}
    body = await post("worker", CONVERTED, variables, {"weight": ("variant", onnx)})
    assert not body.get("errors"), body
    body = await post("read", children, {"id": source})
    assert body["data"]["model"]["children"] == [{"engine": "ONNX"}]
