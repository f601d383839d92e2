"""Free metadata and automatic versions through the `modelci` command against a live hub:
register with metrics, params, tags, a description and a source; versions left out;
`modelci tag set / rm`; `show` and `show --json`; malformed options refused before
anything is uploaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelci.cli.main import app as cli

runner = CliRunner()

# Stored as given, not read: no conversion, no cage, nothing but the registry.
STORED = ("--framework", "PyTorch", "--engine", "NONE", "--no-convert")


def modelci(hub: str, *arguments: str) -> Any:
    result = runner.invoke(cli, [*arguments, "--server", hub], env={"COLUMNS": "200"})
    return result


@pytest.fixture
def weight(tmp_path: Path) -> Path:
    path = tmp_path / "resnet18.bin"
    path.write_bytes(b"weights of a network")
    return path


def registered(hub: str, weight: Path, *options: str) -> dict[str, Any]:
    result = modelci(hub, "register", str(weight), *STORED, *options, "--json")
    assert result.exit_code == 0, result.output
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def test_register_with_every_metadata_option(hub: str, weight: Path, tmp_path: Path) -> None:
    model = registered(
        hub,
        weight,
        "--architecture",
        "Described",
        "--task",
        "Image_Classification",
        "--dataset",
        "ImageNet",
        "--metric",
        "acc=0.91",
        "--metric",
        "top5=0.97",
        "--param",
        "lr=0.1",
        "--param",
        "optimizer=sgd=momentum",  # split at the first '='
        "--tag",
        "team=vision",
        "--description",
        "Trained **twice**.\n\n- on 8 GPUs",
        "--source",
        "https://mlflow.example/#/experiments/1/runs/abc",
        "--run-id",
        "abc",
    )
    assert model["version"] == 1  # left out: the first of its line
    assert model["metric"] == [{"name": "acc", "value": 0.91}, {"name": "top5", "value": 0.97}]
    assert model["params"] == [
        {"name": "lr", "value": "0.1"},
        {"name": "optimizer", "value": "sgd=momentum"},
    ]
    assert model["tags"] == [{"name": "team", "value": "vision"}]
    assert model["description"] == "Trained **twice**.\n\n- on 8 GPUs"
    assert model["source"] == {
        "uri": "https://mlflow.example/#/experiments/1/runs/abc",
        "run_id": "abc",
    }
    assert model["created_by"] == "anonymous"  # auth is off on loopback

    shown = modelci(hub, "show", model["id"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert "metrics: acc=0.91, top5=0.97" in lines
    assert "params: lr=0.1, optimizer=sgd=momentum" in lines
    assert "tags: team=vision" in lines
    assert "source: https://mlflow.example/#/experiments/1/runs/abc (run abc)" in lines
    assert "created by: anonymous" in lines
    at = lines.index("description:")
    assert lines[at + 1 : at + 4] == ["  Trained **twice**.", "", "  - on 8 GPUs"]

    as_json = json.loads(modelci(hub, "show", model["id"], "--json").stdout)
    for field in ("metric", "params", "tags", "description", "source", "created_by"):
        assert as_json[field] == model[field], field

    # From a file, as Markdown is written; markup-looking text stays text.
    readme = tmp_path / "MODEL.md"
    readme.write_text("# ResNet-18\n\n[bold]not markup[/bold] :rocket:\n", encoding="utf-8")
    from_file = registered(
        hub, weight, "--architecture", "Described", "--description-file", str(readme)
    )
    assert from_file["description"] == readme.read_text()
    shown = modelci(hub, "show", from_file["id"])
    assert "  [bold]not markup[/bold] :rocket:" in shown.stdout.splitlines()
    assert "metrics: none" in shown.stdout.splitlines()


def test_versions_left_out_are_consecutive_and_said(hub: str, weight: Path) -> None:
    line = ("--architecture", "Numbered", "--task", "Image_Classification", "--dataset", "C10")
    said = []
    for _ in range(2):
        result = modelci(hub, "register", str(weight), *STORED, *line)
        assert result.exit_code == 0, result.output
        said.append(result.stdout)
    assert "v1)" in said[0] and "v2)" in said[1]
    assert "version 1: the next for Numbered, Image_Classification, C10" in said[0]
    assert "version 2: the next for Numbered, Image_Classification, C10" in said[1]

    # A version given is taken as given, and not said to be the next.
    given = modelci(hub, "register", str(weight), *STORED, *line, "--version", "7")
    assert given.exit_code == 0 and "v7)" in given.stdout and "the next" not in given.stdout
    assert "version 8:" in modelci(hub, "register", str(weight), *STORED, *line).stdout

    # Given again, it is a conflict whose next step is to leave --version out.
    again = modelci(hub, "register", str(weight), *STORED, *line, "--version", "7")
    assert again.exit_code == 5, again.output
    assert "leave --version out" in " ".join(again.stderr.split())


def test_tags_set_and_removed_by_id_and_by_alias(hub: str, weight: Path) -> None:
    model = registered(hub, weight, "--architecture", "Tagged", "--tag", "stage=dev")
    result = modelci(hub, "tag", "set", model["id"], "team=vision", "stage=prod")
    assert result.exit_code == 0, result.output
    assert "tags: stage=prod, team=vision" in result.stdout or (
        "tags: team=vision, stage=prod" in result.stdout
    )
    assert modelci(hub, "alias", "set", "tagged-prod", model["id"]).exit_code == 0
    result = modelci(hub, "tag", "rm", "tagged-prod", "stage", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tags"] == [{"name": "team", "value": "vision"}]

    listed = modelci(hub, "ls", "--architecture", "Tagged")
    header = listed.stdout.splitlines()[1]
    assert "tags" in header and "team=vision" in listed.stdout
    untagged = modelci(hub, "ls", "--architecture", "Numbered")
    assert "tags" not in untagged.stdout  # no column where no model has a tag

    missing = modelci(hub, "tag", "rm", model["id"], "stage")
    assert missing.exit_code == 4 and f"modelci show {model['id']}" in missing.stderr
    unknown = modelci(hub, "tag", "set", "no-such-alias", "a=b")
    assert unknown.exit_code == 4 and "neither a model id" in unknown.stderr
    malformed = modelci(hub, "tag", "set", model["id"], "team")
    assert malformed.exit_code == 2 and "NAME=VALUE" in malformed.stderr
    shown = json.loads(modelci(hub, "show", model["id"], "--json").stdout)
    assert shown["tags"] == [{"name": "team", "value": "vision"}]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (("--metric", "acc"), "'acc' is not NAME=VALUE"),
        (("--metric", "acc=high"), "must be a finite number"),
        (("--metric", "acc=inf"), "must be a finite number"),
        (("--metric", "acc=0.9", "--metric", "acc=0.8"), "'acc' is given twice"),
        (("--tag", "=vision"), "is not NAME=VALUE"),
        (("--param", "learning rate=0.1"), "'learning rate' is not 1 to 64 letters"),
        (("--tag", "note=" + "x" * 1025), "at most 1,024"),
        (("--run-id", "abc"), "give --source"),
        (("--description", "a", "--description-file", "{file}"), "not both"),
    ],
)
def test_malformed_metadata_is_refused_before_anything_is_sent(
    hub: str, weight: Path, options: tuple[str, ...], said: str
) -> None:
    options = tuple(str(weight) if option == "{file}" else option for option in options)
    result = modelci(hub, "register", str(weight), *STORED, "--architecture", "Bad", *options)
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.stderr.split()), result.stderr
    listed = modelci(hub, "ls", "--architecture", "Bad", "--json")
    assert json.loads(listed.stdout) == []
