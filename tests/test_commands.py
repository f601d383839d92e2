"""The `modelci` client commands against a live hub, as a shell script would use them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import PREFLIGHT, REGISTER, model_input, modelci_serve, multipart
from test_worker import QUICK, worker
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.server.embedded import free_port

runner = CliRunner()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with modelci_serve(tmp_path_factory.mktemp("hub"), free_port(), workers="0") as (url, _):
        yield url


def modelci(hub: str, *arguments: str) -> tuple[int, str]:
    result = runner.invoke(cli, [*arguments, "--server", hub], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout


def test_register_list_show_download_remove(hub: str, onnx_model: Path, tmp_path: Path) -> None:
    code, out = modelci(
        hub,
        "register",
        str(onnx_model),
        "--architecture",
        "SmallNet",
        "--task",
        "Image_Classification",
        "--no-convert",
        "--json",
    )
    assert code == 0, out
    model = json.loads(out)
    assert (model["framework"], model["engine"]) == ("ONNX", "ONNX")  # inferred from the file
    assert model["inputs"][0]["shape"] == [-1, 3, 16, 16]  # filled in from the graph

    code, out = modelci(hub, "ls", "--architecture", "SmallNet", "--json")
    assert code == 0 and [m["id"] for m in json.loads(out)] == [model["id"]]
    code, out = modelci(hub, "ls")
    assert code == 0 and "SmallNet" in out

    code, out = modelci(hub, "show", model["id"])
    assert code == 0 and "SmallNet" in out

    code, out = modelci(hub, "download", model["id"], "-o", str(tmp_path / "copy.onnx"))
    assert code == 0
    assert (tmp_path / "copy.onnx").read_bytes() == onnx_model.read_bytes()
    code, _ = modelci(hub, "download", model["id"], "-o", str(tmp_path / "copy.onnx"))
    assert code == 1  # kept: --force overwrites
    code, _ = modelci(hub, "download", model["id"], "-o", str(tmp_path / "copy.onnx"), "--force")
    assert code == 0

    code, _ = modelci(
        hub,
        "register",
        str(onnx_model),
        "--architecture",
        "SmallNet",
        "--task",
        "Image_Classification",
        "--no-convert",
        "--version",
        str(model["version"]),
    )
    assert code == 5  # CONFLICT: registered already

    code, _ = modelci(hub, "rm", model["id"])
    assert code == 0
    code, _ = modelci(hub, "show", model["id"])
    assert code == 4  # NOT_FOUND
    code, _ = modelci(hub, "show", "not-an-id")
    assert code == 4  # NOT_FOUND: not an id, so an alias, and no alias has that name
    code, _ = modelci(hub, "show", "neither an id nor an alias!")
    assert code == 2  # BAD_USER_INPUT


def test_what_the_hub_says_cannot_drive_the_terminal(hub: str) -> None:
    """Escape sequences in a model's metadata (retitle the terminal, clear it) and rich's
    markup are printed as plain text by `ls` and `show`."""
    hostile = "Evil\x1b]0;pwned\x07Net\x1b[2J[red]x[/red]\x9b31m"
    request = multipart(
        REGISTER,
        {"input": model_input(architecture=hostile, dataset="Data\x1b[1;1H\rset")},
        {"weight": ("w.bin", b"weights")},
    )
    body = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, **request).json()
    model_id = body["data"]["registerModel"]["id"]
    for arguments in (("ls",), ("show", model_id)):
        code, out = modelci(hub, *arguments)
        assert code == 0, out
        assert not any(character in out for character in "\x1b\x07\x9b\r"), repr(out)
        flat = "".join(line.strip(" │") for line in out.splitlines())
        assert "[red]x[/red]" in flat  # shown, not taken as markup
    code, out = modelci(hub, "show", model_id, "--json")
    assert json.loads(out)["architecture"] == hostile  # scripts get the data as it is


def test_profile_follows_the_job(hub: str, onnx_model: Path) -> None:
    code, out = modelci(
        hub, "register", str(onnx_model), "--architecture", "Profiled", "--no-convert", "--json"
    )
    model_id = json.loads(out)["id"]
    with worker(hub, *QUICK, "--lease-seconds", "30"):
        code, out = modelci(hub, "profile", model_id, "--batch", "1", "--batch", "2", "--json")
    assert code == 0, out
    job = json.loads(out)
    assert job["status"] == "SUCCEEDED" and job["batch_sizes"] == [1, 2]

    code, out = modelci(hub, "show", model_id)
    assert code == 0 and "dynamic" in out and "static" in out
    code, out = modelci(hub, "jobs", "--model", model_id, "--json")
    assert [j["status"] for j in json.loads(out)] == ["SUCCEEDED"]


def test_an_unreachable_hub_has_its_own_exit_code() -> None:
    code, _ = modelci(f"http://127.0.0.1:{free_port()}", "ls")
    assert code == 8
