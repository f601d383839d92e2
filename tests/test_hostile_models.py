"""Registration refuses PyTorch uploads that would run code when loaded, reach files
when run, or blow up when unpacked, and inspects archives off the event loop.

Every file is built here for real: models exported or scripted with torch, then edited
as an attacker would edit the archive.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import REGISTER, Api, model_input, serving
from starlette.applications import Starlette
from test_errors import model_count, staged_files, stored_blobs
from test_registration_checks import inspector, refusal
from torch import nn

from modelci.cage.formats import HOSTILE_OPERATORS, OPERATOR_NAMESPACES, ArchiveLimits
from modelci.server.app import create_app
from modelci.server.settings import Settings

INPUTS = [{"name": "input", "shape": [-1, 3, 16, 16], "dtype": "TYPE_FP32"}]
VECTOR = [{"name": "x", "shape": [-1, 4], "dtype": "TYPE_FP32"}]


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


class ResNetish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Block(8), Block(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(x)).mean(dim=(2, 3))
        return self.head(features)


class Relu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class ReadsAFile(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * 0 + torch.from_file("/etc/passwd", False, 64, dtype=torch.uint8).float()


class WritesAFile(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.path, True, 16, dtype=torch.uint8)
        mapped.fill_(65)
        return x + mapped.float().sum() * 0


class WritesAFileWhenLoaded(nn.Module):
    """Its ``__setstate__`` runs in ``torch.jit.load``, before any forward."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> str:
        return self.path

    @torch.jit.export
    def __setstate__(self, state: str) -> None:
        self.training = False
        self.path = state
        mapped = torch.from_file(state, True, 16, dtype=torch.uint8)
        mapped.fill_(66)
        self.path = state + str(int(mapped.sum()))


class Mkdir:
    """A pickle that makes a directory when unpickled: the marker of code execution."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.path,)


def saved(save: Callable[[io.BytesIO], Any]) -> bytes:
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


def scripted(module: nn.Module) -> bytes:
    return saved(lambda buffer: torch.jit.save(torch.jit.script(module), buffer))


def exported(module: nn.Module, example: torch.Tensor) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: batch},))
    return saved(lambda buffer: torch.export.save(program, buffer))


def rewritten(archive: bytes, change: Callable[[str, bytes], bytes]) -> bytes:
    """The zip with each member's content replaced by ``change(name, content)``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(buffer, "w") as target:
        for entry in source.infolist():
            target.writestr(entry.filename, change(entry.filename, source.read(entry)))
    return buffer.getvalue()


def member(archive: bytes, suffix: str) -> bytes:
    """The content of the archive's member below its root folder."""
    with zipfile.ZipFile(io.BytesIO(archive)) as source:
        (name,) = [name for name in source.namelist() if name.split("/", 1)[1] == suffix]
        return source.read(name)


@pytest.fixture(scope="module")
def resnetish() -> dict[str, bytes]:
    torch.manual_seed(0)
    net = ResNetish().eval()
    example = torch.randn(2, 3, 16, 16)
    return {
        "torchscript": saved(lambda buffer: torch.jit.save(torch.jit.trace(net, example), buffer)),
        "pt2": exported(net, example),
    }


@pytest.fixture(scope="module")
def small_pt2() -> bytes:
    return exported(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), torch.randn(2, 4))


async def register(api: Api, content: bytes, engine: str, **fields: Any) -> dict[str, Any]:
    """The registration's response body, errors included."""
    fields = {"inputs": VECTOR, "outputs": [], **fields}
    variables = {"input": model_input(engine=engine, **fields)}
    return await api.post(REGISTER, variables, {"weight": ("model.bin", content)})


async def assert_refused_and_nothing_stored(
    api: Api, settings: Settings, body: dict[str, Any], *words: str
) -> str:
    message = refusal(body)
    for word in words:
        assert word in message, message
    assert await model_count(api) == 0
    assert stored_blobs(settings) == [] and staged_files(settings) == []
    return message


# torch.export archives whose contents are unpickled by torch.export.load


def with_pickled_weight(pt2: bytes, payload: bytes) -> bytes:
    """The archive with its first weight marked ``use_pickle`` and replaced by ``payload``."""
    config_name = "data/weights/model_weights_config.json"
    config = json.loads(member(pt2, config_name))
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True

    def change(name: str, content: bytes) -> bytes:
        if name.endswith(config_name):
            return json.dumps(config).encode()
        if name.endswith("data/weights/" + first["path_name"]):
            return payload
        return content

    return rewritten(pt2, change)


async def test_a_pt2_with_a_pickled_weight_is_refused_and_never_unpickled(
    api: Api, settings: Settings, small_pt2: bytes, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = with_pickled_weight(small_pt2, pickle.dumps(Mkdir(marker), protocol=2))
    body = await register(api, hostile, "PYTORCH")
    await assert_refused_and_nothing_stored(api, settings, body, "pickled", "--allow-pickle")
    assert not marker.exists()

    # The file is what it claims to be: torch.export.load runs the payload.
    with pytest.raises(Exception):  # noqa: B017 (the payload returns no tensor)
        torch.export.load(io.BytesIO(hostile))
    assert marker.is_dir()


async def test_a_pt2_whose_sample_inputs_need_full_unpickling_is_refused(
    api: Api, settings: Settings, small_pt2: bytes, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = saved(lambda buffer: torch.save(Mkdir(marker), buffer))

    def change(name: str, content: bytes) -> bytes:
        return payload if name.endswith("data/sample_inputs/model.pt") else content

    hostile = rewritten(small_pt2, change)
    body = await register(api, hostile, "PYTORCH")
    await assert_refused_and_nothing_stored(api, settings, body, "sample inputs", "posix.mkdir")
    assert not marker.exists()

    # torch.export.load falls back to full unpickling when the restricted unpickler refuses.
    with pytest.raises(Exception):  # noqa: B017
        torch.export.load(io.BytesIO(hostile))
    assert marker.is_dir()


async def test_a_pt2_with_a_pickled_weight_is_accepted_when_pickles_are_allowed_but_not_loaded(
    settings: Settings, mongodb_url: str, small_pt2: bytes, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = with_pickled_weight(small_pt2, pickle.dumps(Mkdir(marker), protocol=2))
    trusting = settings.model_copy(update={"allow_pickle": True})
    async with serving(create_app(trusting, mongodb_url=mongodb_url)) as api:
        body = await register(api, hostile, "PYTORCH")
        assert not body.get("errors"), body["errors"]
    assert not marker.exists()  # neither the web process nor its helper loaded it


# Graphs that reach files, processes or the network


async def test_torchscript_reading_a_server_file_is_refused_naming_the_operator(
    api: Api, settings: Settings
) -> None:
    body = await register(api, scripted(ReadsAFile()), "TORCHSCRIPT")
    await assert_refused_and_nothing_stored(api, settings, body, "aten::from_file")


async def test_torchscript_writing_a_server_file_is_refused_and_writes_nothing(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    target = tmp_path / "written"
    body = await register(api, scripted(WritesAFile(str(target))), "TORCHSCRIPT")
    await assert_refused_and_nothing_stored(api, settings, body, "aten::from_file")
    assert not target.exists()


async def test_torchscript_writing_a_file_when_loaded_is_refused_before_it_is_loaded(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    target = tmp_path / "written"
    content = scripted(WritesAFileWhenLoaded(str(tmp_path / "at-save")))
    body = await register(api, content, "TORCHSCRIPT")
    await assert_refused_and_nothing_stored(api, settings, body, "aten::from_file")

    # torch.jit.load runs __setstate__: why the code is read before anything loads it.
    loaded = rewritten(content, lambda name, data: data.replace(b"at-save", b"written"))
    torch.jit.load(io.BytesIO(loaded))
    assert target.exists()


@pytest.mark.parametrize(
    ("call", "operator"),
    [
        (b"ops.evil.relu(x)", "evil::relu"),
        (b"torch.ops.evil.relu(x)", "evil::relu"),
        (b'getattr(torch, "from_file")("/etc/passwd", False, 4)', "aten::from_file"),
        (b'torch.save(x, "/tmp/out")', "aten::save"),
    ],
)
async def test_torchscript_edited_to_call_a_hostile_operator_is_refused(
    api: Api, settings: Settings, call: bytes, operator: str
) -> None:
    content = scripted(Relu())
    assert b"torch.relu(x)" in member(content, "code/__torch__/test_hostile_models.py")
    hostile = rewritten(content, lambda name, data: data.replace(b"torch.relu(x)", call))
    body = await register(api, hostile, "TORCHSCRIPT")
    await assert_refused_and_nothing_stored(api, settings, body, operator)


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("torch.ops.aten.from_file.default", "aten::from_file"),
        ("torch.ops.evil.relu.default", "evil::relu"),
        ("torch.load", "torch.load"),
    ],
)
async def test_a_pt2_graph_calling_a_hostile_target_is_refused(
    api: Api, settings: Settings, small_pt2: bytes, target: str, named: str
) -> None:
    graph = member(small_pt2, "models/model.json")
    assert b'"torch.ops.aten.relu.default"' in graph
    hostile = rewritten(
        small_pt2,
        lambda name, data: data.replace(b'"torch.ops.aten.relu.default"', f'"{target}"'.encode()),
    )
    body = await register(api, hostile, "PYTORCH")
    await assert_refused_and_nothing_stored(api, settings, body, named)


def test_every_operator_taking_a_file_name_is_named_hostile() -> None:
    """A torch upgrade that adds one fails here rather than letting it through."""
    for schema in torch._C._jit_get_all_schemas():
        if schema.name.split("::")[0] not in OPERATOR_NAMESPACES:
            continue
        for argument in schema.arguments:
            if argument.name in ("filename", "file", "path", "f") and "str" in str(argument.type):
                assert schema.name in HOSTILE_OPERATORS, schema


# What still registers


async def test_benign_torchscript_and_pt2_models_register(
    api: Api, resnetish: dict[str, bytes]
) -> None:
    for engine, content in (
        ("TORCHSCRIPT", resnetish["torchscript"]),
        ("PYTORCH", resnetish["pt2"]),
    ):
        body = await register(
            api, content, engine, architecture=f"ResNetish-{engine}", inputs=INPUTS
        )
        assert not body.get("errors"), (engine, body["errors"])
    body = await register(api, scripted(Relu()), "TORCHSCRIPT", architecture="Scripted")
    assert not body.get("errors"), body["errors"]


def test_the_web_process_does_not_import_torch() -> None:
    check = "import sys, modelci.server.app; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", check], check=True)


# Archives that are too much to unpack, or to list


def with_member(archive: bytes, name: str, megabytes: int) -> bytes:
    """The archive plus a deflated member of zeros, written a MiB at a time."""
    buffer = io.BytesIO(archive)
    with (
        zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as target,
        target.open(name, "w") as member,
    ):
        chunk = bytes(1024**2)
        for _ in range(megabytes):
            member.write(chunk)
    return buffer.getvalue()


def claiming_size(archive: bytes, name: str, size: int) -> bytes:
    """The archive with its central directory claiming ``name`` unpacks to ``size``."""
    data = bytearray(archive)
    encoded = name.encode()
    at = data.find(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(encoded)] != encoded:
        at = data.find(b"PK\x01\x02", at + 4)
    struct.pack_into("<L", data, at + 24, size)
    return bytes(data)


async def test_a_zip_bomb_is_refused_without_being_unpacked(
    api: Api, settings: Settings, resnetish: dict[str, bytes]
) -> None:
    bomb = with_member(resnetish["torchscript"], "archive/data/99", 64)
    assert len(bomb) < 2 * 1024**2
    body = await register(api, bomb, "TORCHSCRIPT", inputs=INPUTS)
    await assert_refused_and_nothing_stored(api, settings, body, "zip bomb", "archive/data/99")

    # Sizes are the central directory's: one that claims 3.75 GiB is refused as such.
    liar = claiming_size(
        with_member(resnetish["torchscript"], "archive/x", 1), "archive/x", 0xF0000000
    )
    body = await register(api, liar, "TORCHSCRIPT", inputs=INPUTS)
    await assert_refused_and_nothing_stored(api, settings, body, "zip bomb", "3.75 GiB")


async def test_an_archive_past_the_unpacked_size_cap_is_refused(
    app: Starlette, api: Api, settings: Settings, resnetish: dict[str, bytes]
) -> None:
    inspector(app).archive_limits = ArchiveLimits(unpacked=16 * 1024)
    body = await register(api, resnetish["torchscript"], "TORCHSCRIPT", inputs=INPUTS)
    await assert_refused_and_nothing_stored(api, settings, body, "unpacks to more than")


def many_entries(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/constants.pkl", b"")
        for index in range(count):
            archive.writestr(f"archive/code/{index}.py", b"")
    return buffer.getvalue()


async def test_a_zip_of_very_many_entries_is_refused_while_the_server_stays_responsive(
    app: Starlette, api: Api, settings: Settings
) -> None:
    checks = inspector(app)
    assert not (await register(api, scripted(Relu()), "TORCHSCRIPT")).get("errors")
    (helper,) = checks.idle_helpers
    assert helper.process.pid is not None
    # The helper is frozen with the listing in its hands: the inspection stays in flight
    # for as long as the test needs, and the event loop must go on serving meanwhile.
    os.kill(helper.process.pid, signal.SIGSTOP)
    try:
        registration = asyncio.create_task(
            register(api, many_entries(20_000), "TORCHSCRIPT", architecture="Many")
        )
        async with asyncio.timeout(60):
            while helper in checks.idle_helpers:  # the upload has reached the helper
                await asyncio.sleep(0.01)
        health = await api.http.get("/healthz")
        assert health.status_code == 200
        assert not registration.done()
    finally:
        os.kill(helper.process.pid, signal.SIGCONT)
    body = await registration
    message = refusal(body)
    assert "more than 10000 entries" in message, message
    assert await model_count(api) == 1  # the first model only
    assert staged_files(settings) == []
