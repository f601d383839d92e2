"""The cage uploaded models run in: what a hostile model can reach from inside, and
what happens to one that never stops.

Registration refuses the hostile files these tests use (``test_hostile_models.py``);
here they go straight to the cage, as defence in depth must hold on its own. The
payload rides in a pickle, which the cage loads only because the tests ask it to
(``allow_pickle``): it runs arbitrary Python, the strongest thing an upload can do.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import onnx
import psutil
import pytest
import torch
from conftest import PREFLIGHT, model_input, modelci_serve, multipart
from onnx import TensorProto, helper

from modelci.cage.runner import (
    SHM_BYTES,
    TMP_BYTES,
    TMPFS_BYTES,
    CageError,
    CageStopped,
    GiB,
    Limits,
    MiB,
    bubblewrap,
    cage_memory_bytes,
    run_caged,
)
from modelci.profiling import steps
from modelci.server.embedded import free_port

INPUTS = [{"name": "x", "shape": [-1, 4], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}]

SNOOP = """
import json, os, socket
report = {"env": dict(os.environ), "uid": os.getuid()}
try:
    report["passwd"] = open("/etc/passwd").read(64)
except OSError as error:
    report["passwd"] = None
try:
    open(%(marker)r, "w").write("written from the cage")
    report["wrote_marker"] = True
except OSError:
    report["wrote_marker"] = False
try:
    socket.create_connection(("127.0.0.1", %(port)d), timeout=2).close()
    report["network"] = True
except OSError:
    report["network"] = False
open(os.path.join(%(scratch)r, "report.json"), "w").write(json.dumps(report))
"""


class Payload:
    """Unpickling this runs ``code``: what a pickled upload can do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


def convert_request() -> dict[str, Any]:
    return {
        "step": "convert",
        "inputs": INPUTS,
        "outputs": ["y"],
        "targets": ["ONNX"],
        "allow_pickle": True,
    }


def run(request: dict[str, Any], model: Path, scratch: Path, limits: Limits) -> list[Any]:
    return list(run_caged(steps.__name__, request, model, scratch, limits, lambda: False))


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed here")
def test_a_model_in_the_cage_sees_no_secret_no_file_and_no_network(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # a service the model might reach
    port = listener.getsockname()[1]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    marker = tmp_path / "marker"  # a folder of the worker's, on the host
    model = tmp_path / "model.pt"
    # Inside the cage the scratch folder is /job/scratch.
    code = SNOOP % {"marker": str(marker), "port": port, "scratch": "/job/scratch"}
    torch.save(Payload(code), model)
    os.environ["MODELCI_TOKEN"] = "mci_secret_of_the_worker"
    try:
        messages = run(convert_request(), model, scratch, Limits(wall_s=120))
    finally:
        del os.environ["MODELCI_TOKEN"]
        listener.close()
    assert (scratch / "report.json").exists(), messages
    report = json.loads((scratch / "report.json").read_text())
    assert "MODELCI_TOKEN" not in report["env"] and "mci_secret" not in json.dumps(report)
    assert report["uid"] == 65534
    assert report["passwd"] is None
    assert report["wrote_marker"] is False and not marker.exists()
    assert report["network"] is False
    # The unpickled object is no model: nothing is produced from it.
    assert messages and not [message for message in messages if message["type"] == "variant"]


def test_a_model_over_its_memory_limit_fails_its_step(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    model = tmp_path / "model.pt"
    torch.save(Payload("hog = bytearray(6 * 1024 ** 3)"), model)
    limits = Limits(wall_s=120, memory_bytes=3 * 1024**3)
    try:
        messages = run(convert_request(), model, scratch, limits)
    except CageError as error:  # killed outright
        assert "memory" in str(error) or "killed" in str(error)
    else:  # or Python's MemoryError, reported by the step
        assert "MemoryError" in json.dumps(messages[-1]), messages


def scalar(data_type: int, value: Any) -> onnx.TensorProto:
    return helper.make_tensor("value", data_type, [], [value])


def endless_loop_model() -> bytes:
    """An ONNX Loop with 2**62 iterations: 268 bytes that run for ever."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["carried"], ["carried_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried_out", TensorProto.FLOAT, None),
        ],
    )
    body.node.insert(0, helper.make_node("Identity", ["cond"], ["cond_out"]))
    graph = helper.make_graph(
        [
            helper.make_node(
                "Constant",
                [],
                ["trips"],
                value=helper.make_tensor("t", TensorProto.INT64, [], [2**62]),
            ),
            helper.make_node(
                "Constant", [], ["go"], value=helper.make_tensor("g", TensorProto.BOOL, [], [True])
            ),
            helper.make_node("Loop", ["trips", "go", "x"], ["y"], body=body),
        ],
        "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_a_runaway_model_is_killed_when_its_step_is_stopped(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    model = tmp_path / "endless.onnx"
    model.write_bytes(endless_loop_model())
    request = {
        "step": "profile",
        "inputs": INPUTS,
        "batch_sizes": [1],
        "ip": "127.0.0.1",
        "device": {"device_id": "cpu", "name": "cpu", "kind": "CPU", "total_memory": 1},
        "measurement": {"window_s": 0.1, "min_runs": 5, "max_windows": 3},
    }
    planned = []

    def stop_once_running() -> bool:
        return bool(planned)

    before = set(psutil.Process().children(recursive=True))
    with pytest.raises(CageStopped):
        for message in run_caged(
            "modelci.profiling.steps",
            request,
            model,
            scratch,
            Limits(wall_s=600),
            stop_once_running,
        ):
            planned.append(message)  # the sweep's plan: it is now running the model
    left = set(psutil.Process().children(recursive=True)) - before
    assert not [process for process in left if process.is_running()]


def test_a_cancelled_runaway_profile_frees_its_worker_for_the_next_job(tmp_path: Path) -> None:
    """Through the real server and its worker: cancel the endless profile, and the next
    model's profile runs and finishes (the worker was held for good before)."""
    with modelci_serve(tmp_path, free_port(), workers="1") as (hub, _):

        def register(content: bytes, version: int) -> str:
            query = (
                "mutation($input: ModelInput!, $weight: Upload!) { registerModel(input: $input,"
                " weight: $weight, convert: false, profile: true) { id } }"
            )
            fields = model_input(
                engine="ONNX", framework="ONNX", version=version, inputs=[], outputs=[]
            )
            request = multipart(query, {"input": fields}, {"weight": ("m.onnx", content)})
            body = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, **request).json()
            assert not body.get("errors"), body
            return str(body["data"]["registerModel"]["id"])

        def job_of(model_id: str) -> dict[str, Any]:
            query = (
                "query($m: ID!) { profilingJobs(modelId: $m) "
                "{ nodes { id status log { message } } } }"
            )
            body = httpx.post(
                f"{hub}/graphql", json={"query": query, "variables": {"m": model_id}}
            ).json()
            return dict(body["data"]["profilingJobs"]["nodes"][0])

        def wait_for(model_id: str, done: Any) -> dict[str, Any]:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                job = job_of(model_id)
                if done(job):
                    return job
                time.sleep(0.5)
            raise AssertionError(f"job never got there: {job}")

        endless = register(endless_loop_model(), 1)
        job = wait_for(
            endless,
            lambda job: (
                any(
                    "batch" in entry["message"] or "cage" in entry["message"]
                    for entry in job["log"]
                )
                and job["status"] == "RUNNING"
            ),
        )
        cancel = "mutation($id: ID!) { cancelProfilingJob(id: $id) { status } }"
        httpx.post(f"{hub}/graphql", json={"query": cancel, "variables": {"id": job["id"]}})
        small = register(small_onnx_model(), 2)
        finished = wait_for(small, lambda job: job["status"] in ("SUCCEEDED", "FAILED"))
        assert finished["status"] == "SUCCEEDED", finished


def small_onnx_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# Limits that hold on the host: what the cage can take of its processes, memory and disk.

# Unpickled code runs with the unpickler's globals: a function imports what it uses.
REPORTS = """
import os
def report(name, value):
    import json, os
    open(os.path.join(%(scratch)r, name + ".json"), "w").write(json.dumps(value))
"""

FORKS = """
started, refused = 0, None
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as error:
        refused = str(error)
        break
    if pid == 0:
        os._exit(0)
    started += 1
report("forks", {"started": started, "refused": refused})
"""

FILLS = """
def fill(path):
    written = 0
    try:
        with open(path, "wb") as file:
            for _ in range(64):
                file.write(b"x" * (16 * 1024 * 1024))
                file.flush()
                written += 16 * 1024 * 1024
    except OSError as error:
        return written
    return written
def write_at_root():
    try:
        open("/anything", "w").write("x")
        return True
    except OSError:
        return False
report("fills", {"tmp": fill("/tmp/fill"), "shm": fill("/dev/shm/fill"), "root": write_at_root()})
"""


def caged_code(code: str, tmp_path: Path, limits: Limits | None = None) -> tuple[Path, list[Any]]:
    """Run ``code`` in the cage (as an unpickled model does): its scratch folder, and
    what the step said."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    model = tmp_path / "model.pt"
    torch.save(Payload(REPORTS % {"scratch": "/job/scratch"} + code), model)
    return scratch, run(convert_request(), model, scratch, limits or Limits(wall_s=120))


def reported(scratch: Path, name: str) -> Any:
    return json.loads((scratch / f"{name}.json").read_text())


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed here")
def test_a_model_in_the_cage_cannot_fork(tmp_path: Path) -> None:
    scratch, _ = caged_code(FORKS, tmp_path)
    forks = reported(scratch, "forks")
    assert forks["started"] < 200 and "Resource temporarily unavailable" in forks["refused"]


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed here")
def test_the_cages_memory_backed_folders_are_sized_and_its_root_read_only(
    tmp_path: Path,
) -> None:
    scratch, _ = caged_code(FILLS, tmp_path)
    fills = reported(scratch, "fills")
    assert fills["tmp"] <= TMP_BYTES and fills["shm"] <= SHM_BYTES
    assert fills["root"] is False


def test_a_step_filling_its_scratch_folder_is_ended(tmp_path: Path) -> None:
    code = """
import threading
for index in range(64):
    with open(os.path.join(%r, f"filler-{index}"), "wb") as file:
        file.write(b"x" * (8 * 1024 * 1024))
threading.Event().wait()  # and stays, holding it
""" % ("/job/scratch" if bubblewrap() else str(tmp_path / "scratch"))
    with pytest.raises(CageError, match="scratch folder"):
        caged_code(code, tmp_path, Limits(wall_s=120, scratch_bytes=64 * MiB))


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed here")
def test_a_folder_on_the_workers_python_path_is_not_in_the_cage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "on-pythonpath"  # what PYTHONPATH=/root puts on sys.path
    folder.mkdir()
    (folder / "secret.txt").write_text("the worker's secret")
    monkeypatch.syspath_prepend(str(folder))
    code = """
try:
    report("read", open(%r).read())
except OSError as error:
    report("read", type(error).__name__)
""" % str(folder / "secret.txt")
    scratch, _ = caged_code(code, tmp_path)
    assert reported(scratch, "read") == "FileNotFoundError"


def test_two_cages_and_the_hubs_check_helper_fit_the_hosts_memory() -> None:
    for physical in (8 * GiB, 24 * GiB, 64 * GiB, 512 * GiB):
        helper = max(4 * GiB, physical // 2)
        each = cage_memory_bytes(2, physical)
        if physical >= 24 * GiB:
            assert 2 * (each + TMPFS_BYTES) + helper < physical, physical
        assert each >= 2 * GiB  # enough to import torch, even on a small host
