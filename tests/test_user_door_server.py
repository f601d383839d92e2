"""The hub's side of the user's door: shapes from .pt2 archives, models with no inputs
refused before any job, downloads that keep their names, tokens made against the hub
the user runs, and error messages that say what to do next."""

from __future__ import annotations

import io
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from conftest import (
    PREFLIGHT,
    REGISTER,
    Api,
    dynamic_result,
    model_input,
    modelci_serve,
    multipart,
)
from networks import SmallConvNet
from test_errors import model_count, staged_files, stored_blobs
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.server.embedded import EmbeddedDatabase, free_port
from modelci.server.routes import content_disposition
from modelci.server.settings import Settings

NO_JOBS = REGISTER.replace("weight: $weight)", "weight: $weight, convert: false, profile: false)")
PROFILE_ONLY = REGISTER.replace(
    "weight: $weight)", "weight: $weight, convert: false, profile: true)"
)
PROFILE = "mutation($id: ID!) { profileModel(modelId: $id) { id } }"
CONVERT = "mutation($id: ID!) { convertModel(modelId: $id) { id } }"
DELETE = "mutation($id: ID!) { deleteModel(id: $id) { id } }"
CLAIM_CONVERSION = """
mutation($devices: [DeviceInput!]!) {
  claimProfilingJob(worker: "w1", devices: $devices, kinds: [CONVERT]) { id }
}"""
CPU = {
    "host": "h",
    "ip": "1.2.3.4",
    "deviceId": "cpu",
    "name": "CPU",
    "kind": "CPU",
    "totalMemory": 1,
}
REGISTER_VARIANT = """
mutation($source: ID!, $weight: Upload!, $check: ConversionCheckInput!, $job: ID!) {
  registerConvertedModel(sourceId: $source, engine: ONNX, weight: $weight, conversion: $check,
                         jobId: $job, worker: "w1") {
    id weight { filename format }
  }
}"""
CHECK = {
    "sourceEngine": "TORCHSCRIPT",
    "batchSizes": [1, 4],
    "maxAbsDiff": 1e-7,
    "maxRelDiff": 2e-7,
    "tolerance": 1e-4,
}
EXAMPLE = torch.randn(2, 3, 16, 16)


def saved(save: Callable[[io.BytesIO], Any]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def net() -> SmallConvNet:
    torch.manual_seed(0)
    return SmallConvNet().eval()


@pytest.fixture(scope="module")
def torchscript(net: SmallConvNet) -> bytes:
    return saved(lambda buffer: torch.jit.save(torch.jit.trace(net, EXAMPLE), buffer))


@pytest.fixture(scope="module")
def pt2(net: SmallConvNet) -> bytes:
    """SmallConvNet (``forward(self, x)``) exported with a dynamic batch."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(net, (EXAMPLE,), dynamic_shapes={"x": {0: batch}})
    return saved(lambda buffer: torch.export.save(program, buffer))


@pytest.fixture(scope="module")
def onnx_file(net: SmallConvNet) -> bytes:
    return saved(
        lambda buffer: torch.onnx.export(
            net,
            (EXAMPLE,),
            buffer,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "b"}, "output": {0: "b"}},
        )
    )


def only_error(body: dict[str, Any], code: str) -> dict[str, Any]:
    assert body.get("errors"), body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == code, error
    found: dict[str, Any] = error
    return found


# Shapes: a .pt2 says its own; a model that says none is refused before any job


async def test_a_pt2_with_a_dynamic_batch_registers_with_its_inputs_and_outputs(
    api: Api, pt2: bytes
) -> None:
    model = await api.register(
        pt2, "net.pt2", architecture="Exported", engine="PYTORCH", inputs=[], outputs=[]
    )
    assert model["inputs"] == [
        {"name": "x", "shape": [-1, 3, 16, 16], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}
    ]
    assert model["outputs"] == [
        {"name": "output", "shape": [-1, 10], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}
    ]

    # Declared tensors that agree are kept: the program takes and returns them by
    # position, so they keep the names the user gave them.
    agreeing = await api.register(
        pt2,
        "net.pt2",
        architecture="Declared",
        engine="PYTORCH",
        inputs=[{"name": "input", "shape": [-1, 3, 16, 16], "format": "FORMAT_NCHW"}],
        outputs=[{"name": "logits", "shape": [-1, 10]}],
    )
    assert [(io["name"], io["format"]) for io in agreeing["inputs"]] == [("input", "FORMAT_NCHW")]
    assert [output["name"] for output in agreeing["outputs"]] == ["logits"]


async def test_a_pt2_contradicting_its_declared_inputs_is_refused(
    api: Api, pt2: bytes, settings: Settings
) -> None:
    cases = {
        "shape": [{"name": "x", "shape": [-1, 3, 32, 32]}],
        "dtype": [{"name": "x", "shape": [-1, 3, 16, 16], "dtype": "TYPE_INT64"}],
        "count": [{"name": "x", "shape": [-1, 3, 16, 16]}, {"name": "y", "shape": [-1]}],
    }
    for what, inputs in cases.items():
        body = await api.post(
            REGISTER,
            {"input": model_input(engine="PYTORCH", inputs=inputs, outputs=[])},
            {"weight": ("net.pt2", pt2)},
        )
        error = only_error(body, "BAD_USER_INPUT")
        assert error["extensions"]["field"] == "inputs", (what, error)
        assert "input.inputs" in error["message"], (what, error)
    assert await model_count(api) == 0
    assert stored_blobs(settings) == [] and staged_files(settings) == []


async def test_a_torchscript_without_inputs_is_refused_for_jobs_and_nothing_is_stored(
    api: Api, torchscript: bytes, settings: Settings
) -> None:
    fields = model_input(engine="TORCHSCRIPT", inputs=[], outputs=[])
    for query in (REGISTER, PROFILE_ONLY):  # convert (the default), or profile
        body = await api.post(query, {"input": fields}, {"weight": ("net.pt", torchscript)})
        error = only_error(body, "BAD_USER_INPUT")
        assert error["extensions"]["field"] == "inputs"
        message = error["message"]
        assert 'inputs: [{name: "input", shape: [-1, 3, 224, 224], dtype: TYPE_FP32}]' in message
        assert "--input input:-1x3x224x224:FP32" in message
        assert "Nothing was stored" in message
    assert await model_count(api) == 0
    assert stored_blobs(settings) == [] and staged_files(settings) == []
    jobs = await api.data("{ profilingJobs { nodes { id } } }")
    assert jobs["profilingJobs"]["nodes"] == []

    # Only stored, it registers; asked for jobs later, it is told how to declare inputs.
    body = await api.post(NO_JOBS, {"input": fields}, {"weight": ("net.pt", torchscript)})
    assert not body.get("errors"), body
    model_id = body["data"]["registerModel"]["id"]
    for query in (PROFILE, CONVERT):
        error = only_error(await api.post(query, {"id": model_id}), "BAD_USER_INPUT")
        assert error["extensions"]["field"] == "modelId"
        assert f'updateModel(id: "{model_id}"' in error["message"], error
    assert (await api.data("{ profilingJobs { nodes { id } } }"))["profilingJobs"]["nodes"] == []


# Downloads keep their names


async def test_downloads_name_the_file_in_both_forms(api: Api) -> None:
    model = await api.register(b"weights", "résumé net.pt")
    response = await api.http.get(f"/models/{model['id']}/weight")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_ net.pt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20net.pt"
    )


def test_download_names_cannot_break_the_header_or_leave_the_folder() -> None:
    # Names as stored before display_filename, or by an import: quotes, controls, paths.
    assert content_disposition('a"b\\c/d\r\nSet-Cookie: x.pt') == (
        "attachment; filename=\"d__Set-Cookie: x.pt\"; filename*=UTF-8''d__Set-Cookie%3A%20x.pt"
    )
    assert content_disposition('say "hi".pt') == (
        "attachment; filename=\"say _hi_.pt\"; filename*=UTF-8''say%20_hi_.pt"
    )
    assert content_disposition("../..") == (
        "attachment; filename=\"weight\"; filename*=UTF-8''weight"
    )


def test_curl_saves_the_download_under_its_name(tmp_path: Path) -> None:
    with modelci_serve(tmp_path / "hub", free_port(), workers="0") as (hub, _):
        request = multipart(
            NO_JOBS, {"input": model_input()}, {"weight": ("resnet18.pt", b"trained weights")}
        )
        body = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, **request).json()
        model_id = body["data"]["registerModel"]["id"]
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        subprocess.run(
            [
                "curl",
                "--silent",
                "--show-error",
                "--fail",
                "-OJ",
                f"{hub}/models/{model_id}/weight",
            ],
            cwd=downloads,
            check=True,
            timeout=60,
        )
    assert [path.name for path in downloads.iterdir()] == ["resnet18.pt"]
    assert (downloads / "resnet18.pt").read_bytes() == b"trained weights"


async def test_a_converted_variant_is_named_after_its_source_with_its_formats_extension(
    api: Api, torchscript: bytes, onnx_file: bytes
) -> None:
    source = await api.register(
        torchscript,
        "resnet18.pt",
        engine="TORCHSCRIPT",
        inputs=[{"name": "input", "shape": [-1, 3, 16, 16]}],
        outputs=[],
    )
    # What a worker uploads for the source's conversion: its scratch name, without an
    # extension.
    job = await api.data(CLAIM_CONVERSION, {"devices": [CPU]})
    data = await api.data(
        REGISTER_VARIANT,
        {"source": source["id"], "check": CHECK, "job": job["claimProfilingJob"]["id"]},
        {"weight": ("variant-onnx", onnx_file)},
    )
    variant = data["registerConvertedModel"]
    assert variant["weight"] == {"filename": "resnet18.onnx", "format": "ONNX"}
    response = await api.http.get(f"/models/{variant['id']}/weight")
    assert 'filename="resnet18.onnx"' in response.headers["content-disposition"]


# Tokens against the hub the user runs


def test_token_create_through_a_live_hubs_api(tmp_path: Path) -> None:
    runner = CliRunner()
    with modelci_serve(tmp_path, free_port(), auth="on", workers="0") as (hub, _):
        # The first admin token, straight on the running hub's data dir, which it names.
        bootstrap = runner.invoke(
            cli,
            ["token", "create", "--name", "root", "--scope", "admin", "--data-dir", str(tmp_path)],
            env={"MODELCI_SERVER": None, "MODELCI_TOKEN": None},
        )
        assert bootstrap.exit_code == 0, bootstrap.output
        assert f"running hub's embedded database in {tmp_path / 'db'}" in bootstrap.stderr
        admin = bootstrap.stdout.strip()

        created = runner.invoke(
            cli,
            ["token", "create", "--name", "ci", "--scope", "write"],
            env={"MODELCI_SERVER": hub, "MODELCI_TOKEN": admin},
        )
        assert created.exit_code == 0, created.output
        assert f"on the hub at {hub}" in created.stderr
        secret = created.stdout.strip()
        headers = {"authorization": f"Bearer {secret}"}
        body = httpx.post(
            f"{hub}/graphql", json={"query": "{ models { nodes { id } } }"}, headers=headers
        ).json()
        assert body == {"data": {"models": {"nodes": []}}}, body

        listed = runner.invoke(
            cli, ["token", "list", "--server", hub, "--token", admin], env={"MODELCI_TOKEN": None}
        )
        assert listed.exit_code == 0, listed.output
        assert "ci" in listed.stdout and "write" in listed.stdout and secret not in listed.stdout

        refused = runner.invoke(
            cli,
            ["token", "create", "--name", "x", "--scope", "read", "--server", hub],
            env={"MODELCI_TOKEN": None},
        )
        assert refused.exit_code == 3, refused.output
        assert "UNAUTHENTICATED" in refused.stderr and "admin token" in refused.stderr

        revoked = runner.invoke(cli, ["token", "revoke", "ci", "--server", hub, "--token", admin])
        assert revoked.exit_code == 0 and "revoked" in revoked.stdout, revoked.output
        after = httpx.post(
            f"{hub}/graphql", json={"query": "{ models { nodes { id } } }"}, headers=headers
        )
        assert after.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_token_commands_say_which_data_they_use(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MODELCI_SERVER": None, "MODELCI_MONGODB_URL": None}
    create = ["token", "create", "--name", "ci", "--scope", "read", "--data-dir", str(tmp_path)]
    refused = runner.invoke(cli, create, env=env)
    assert refused.exit_code == 1
    assert "holds no hub data" in refused.stderr and "--server" in refused.stderr
    assert not (tmp_path / "db").exists()

    with EmbeddedDatabase(tmp_path / "db"):  # the hub's database, no hub serving it
        pass
    listed = runner.invoke(cli, ["token", "list", "--data-dir", str(tmp_path)], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.strip() == "no tokens"
    assert str(tmp_path / "db") in listed.stderr and "no hub serves it now" in listed.stderr


# Small things a user meets


async def test_the_root_says_where_to_go(api: Api) -> None:
    response = await api.http.get("/")
    assert response.status_code == 200
    links = response.json()["links"]
    assert links["graphql"] == "/graphql"
    assert links["dashboard"] == "/dashboard" and links["healthz"] == "/healthz"


async def test_enum_errors_list_the_valid_values(api: Api) -> None:
    body = await api.post(
        REGISTER, {"input": model_input(task="Dancing")}, {"weight": ("m.pt", b"w")}
    )
    error = only_error(body, "BAD_USER_INPUT")
    assert "'Dancing' does not exist in 'Task' enum" in error["message"]
    assert "valid values: Image_Classification, Object_Detection, Segmentation" in error["message"]

    literal = await api.post("{ models(engine: ONNXX) { nodes { id } } }")
    error = only_error(literal, "BAD_USER_INPUT")
    assert "valid values: NONE, TFS, TORCHSCRIPT, ONNX" in error["message"], error
    assert "Did you mean" in error["message"]  # graphql-core's own hint stays


async def test_updating_a_missing_dynamic_result_names_force_insert(api: Api) -> None:
    model = await api.register()
    update = """mutation($id: ID!, $result: DynamicProfileResultInput!) {
      updateDynamicProfilingResult(modelId: $id, result: $result) { id }
    }"""
    body = await api.post(update, {"id": model["id"], "result": dynamic_result()})
    assert "pass forceInsert: true" in only_error(body, "NOT_FOUND")["message"]


async def test_an_onnx_file_declared_as_torchscript_is_told_what_it_is(
    api: Api, onnx_file: bytes, torchscript: bytes
) -> None:
    body = await api.post(
        REGISTER,
        {"input": model_input(engine="TORCHSCRIPT", outputs=[])},
        {"weight": ("net.pt", onnx_file)},
    )
    message = only_error(body, "BAD_USER_INPUT")["message"]
    assert "the file is an ONNX model" in message and "register it with engine ONNX" in message

    body = await api.post(
        REGISTER,
        {"input": model_input(engine="ONNX", outputs=[])},
        {"weight": ("net.onnx", torchscript)},
    )
    message = only_error(body, "BAD_USER_INPUT")["message"]
    assert "the file is a TorchScript archive" in message
    assert "framework PyTorch, engine TORCHSCRIPT" in message


async def test_deleting_a_model_with_variants_names_both_cascades(
    api: Api, torchscript: bytes, onnx_file: bytes
) -> None:
    source = await api.register(
        torchscript,
        "net.pt",
        engine="TORCHSCRIPT",
        inputs=[{"name": "input", "shape": [-1, 3, 16, 16]}],
        outputs=[],
    )
    job = await api.data(CLAIM_CONVERSION, {"devices": [CPU]})
    await api.data(
        REGISTER_VARIANT,
        {"source": source["id"], "check": CHECK, "job": job["claimProfilingJob"]["id"]},
        {"weight": ("variant-onnx", onnx_file)},
    )
    message = only_error(await api.post(DELETE, {"id": source["id"]}), "CONFLICT")["message"]
    assert "cascade: true" in message and f"modelci rm {source['id']} --cascade" in message
