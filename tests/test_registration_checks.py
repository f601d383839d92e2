"""Registration refuses what can never run: ONNX files onnxruntime cannot load, checks
that overrun their time or memory bound, for new models and new weights alike."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from conftest import REGISTER, Api, model_input
from onnx import TensorProto, helper, numpy_helper
from starlette.applications import Starlette
from test_errors import model_count, staged_files, stored_blobs
from test_model_service import GET_MODEL, UPDATE_MODEL
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.server.inspection import ModelInspector
from modelci.server.settings import Settings


def gemm_model(weight_dtype: type[np.generic] = np.float32, features: int = 4) -> bytes:
    """y = x @ w: a float input times weights of ``weight_dtype`` (float64: no kernel)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, features])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    w = numpy_helper.from_array(np.ones((features, 3), dtype=weight_dtype), "w")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="gemm")], "gemm", [x], [y], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)  # what the basic checker lets through
    return model.SerializeToString()


UNLOADABLE = gemm_model(np.float64)
LOADABLE = gemm_model()


async def register_onnx(api: Api, content: bytes, **fields: Any) -> dict[str, Any]:
    """The registration's response body, errors included."""
    variables = {"input": model_input(engine="ONNX", inputs=[], outputs=[], **fields)}
    return await api.post(REGISTER, variables, {"weight": ("model.onnx", content)})


def refusal(body: dict[str, Any]) -> str:
    """The message of a BAD_USER_INPUT refusal of the weight."""
    assert body.get("errors"), body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == "weight", error
    message: str = error["message"]
    assert message.endswith("Nothing was stored."), message
    return message


def inspector(app: Starlette) -> ModelInspector:
    found: ModelInspector = app.state.services.inspector
    return found


async def test_a_model_onnxruntime_cannot_load_is_refused_and_nothing_is_stored(
    api: Api, settings: Settings
) -> None:
    message = refusal(await register_onnx(api, UNLOADABLE))
    assert "onnxruntime cannot load it" in message, message
    assert "Gemm" in message and "tensor(double)" in message, message
    assert "[ONNXRuntimeError]" not in message, message
    assert await model_count(api) == 0
    assert stored_blobs(settings) == [] and staged_files(settings) == []


async def test_a_model_saved_with_its_weights_beside_it_is_told_how_to_save_one_file(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    """torch.onnx.export writes large weights to model.onnx.data by default; the upload is
    the .onnx alone. The refusal says how to make one file of it."""
    path = tmp_path / "model.onnx"
    onnx.save(
        onnx.load_from_string(LOADABLE),
        str(path),
        save_as_external_data=True,
        location="resnet.weights",
        size_threshold=0,
    )
    message = refusal(await register_onnx(api, path.read_bytes()))
    assert "external data files ('resnet.weights')" in message, message  # the file it names
    assert "save_as_external_data=False" in message, message
    assert await model_count(api) == 0
    assert stored_blobs(settings) == [] and staged_files(settings) == []

    # The command line tells it from the file, before anything is sent (no hub listens
    # on port 9: had it tried, it would say the hub is unreachable, exit 8).
    command = ["register", str(path), "--architecture", "Net", "--server", "http://127.0.0.1:9"]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2, result.output
    printed = " ".join(result.output.split())
    assert "an ONNX model, but its tensors refer to external data" in printed, printed
    assert "external_data=False" in printed, printed


async def test_a_loadable_model_registers_with_its_graphs_inputs(api: Api) -> None:
    body = await register_onnx(api, LOADABLE)
    assert not body.get("errors"), body["errors"]
    model = body["data"]["registerModel"]
    assert model["inputs"] == [
        {"name": "x", "shape": [-1, 4], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}
    ]
    assert model["outputs"] == [
        {"name": "y", "shape": [-1, 3], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}
    ]


async def test_a_check_past_its_time_bound_is_refused_and_the_next_one_runs(
    app: Starlette, api: Api, settings: Settings
) -> None:
    checks = inspector(app)
    bound = checks.check_seconds
    checks.check_seconds = 0  # no check can answer within no time at all
    message = refusal(await register_onnx(api, LOADABLE, architecture="Slow"))
    assert "took longer than 0 s" in message, message
    assert not checks.helpers  # the overrunning helper was killed, not left running
    assert await model_count(api) == 0
    assert stored_blobs(settings) == [] and staged_files(settings) == []

    checks.check_seconds = bound
    body = await register_onnx(api, LOADABLE, architecture="Next")
    assert not body.get("errors"), body["errors"]


async def test_a_check_past_its_memory_bound_is_refused_and_the_next_one_runs(
    app: Starlette, api: Api, settings: Settings
) -> None:
    checks = inspector(app)
    headroom, per_byte = checks.memory_headroom, checks.memory_per_byte
    checks.memory_headroom, checks.memory_per_byte = 0, 1  # less than parsing the file takes
    big = gemm_model(features=1_000_000)  # 12 MB of weights
    message = refusal(await register_onnx(api, big, architecture="Big"))
    assert "of memory one ONNX check may use" in message, message
    assert await model_count(api) == 0
    assert stored_blobs(settings) == [] and staged_files(settings) == []

    checks.memory_headroom, checks.memory_per_byte = headroom, per_byte
    body = await register_onnx(api, big, architecture="Big")
    assert not body.get("errors"), body["errors"]


async def test_a_helper_killed_between_checks_is_replaced(app: Starlette, api: Api) -> None:
    assert not (await register_onnx(api, LOADABLE, architecture="First")).get("errors")
    (helper,) = inspector(app).idle_helpers
    assert helper.process.pid is not None
    os.kill(helper.process.pid, signal.SIGKILL)
    helper.process.join()
    body = await register_onnx(api, LOADABLE, architecture="Second")
    assert not body.get("errors"), body["errors"]


async def test_a_new_weight_onnxruntime_cannot_load_leaves_the_model_unchanged(
    api: Api, settings: Settings
) -> None:
    registered = await register_onnx(api, LOADABLE)
    model = registered["data"]["registerModel"]
    blobs = stored_blobs(settings)

    body = await api.post(
        UPDATE_MODEL,
        {"id": model["id"], "input": {"version": 2}},
        {"weight": ("model.onnx", UNLOADABLE)},
    )
    message = refusal(body)
    assert "onnxruntime cannot load it" in message and "Gemm" in message, message
    after = (await api.data(GET_MODEL, {"id": model["id"]}))["model"]
    assert after == model
    assert stored_blobs(settings) == blobs and staged_files(settings) == []


def test_the_web_process_does_not_import_onnxruntime() -> None:
    check = "import sys, modelci.server.app; assert 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, "-c", check], check=True)
