"""One user's hostile upload holds one check slot, not everyone's registrations, and the
code a TorchScript archive runs when loaded runs in the cage only: never in the web
process or its check helpers.

The hostile files are scripted here for real: modules whose ``__setstate__`` (which
``torch.jit.load`` runs) never returns, prints, or writes a file.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import PREFLIGHT, REGISTER, Api, model_input, multipart, serving
from test_errors import staged_files, stored_blobs
from test_hostile_models import VECTOR, WritesAFileWhenLoaded, scripted
from test_registration_checks import LOADABLE, refusal
from torch import nn

from modelci.cage.runner import bubblewrap
from modelci.core.errors import BadUserInput
from modelci.core.identity import Scope
from modelci.server.app import create_app
from modelci.server.inspection import ModelInspector
from modelci.server.settings import Settings


class SpinsWhenLoaded(nn.Module):
    """Its ``__setstate__`` counts up for longer than anyone waits."""

    def __init__(self) -> None:
        super().__init__()
        self.turns = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> int:
        return self.turns

    @torch.jit.export
    def __setstate__(self, state: int) -> None:
        self.training = False
        turns = state
        while turns >= 0:
            turns = turns + 1
        self.turns = turns


class PrintsThenSpinsWhenLoaded(nn.Module):
    """Its ``__setstate__`` prints its word to the loading process's output, then spins."""

    def __init__(self, word: str) -> None:
        super().__init__()
        self.word = word

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> str:
        return self.word

    @torch.jit.export
    def __setstate__(self, state: str) -> None:
        self.training = False
        self.word = state
        print(state)
        turns = 0
        while turns >= 0:
            turns = turns + 1


async def registered(api: Api, token: str | None, content: bytes, **fields: Any) -> dict[str, Any]:
    """The registration's response body, errors included."""
    fields = {"inputs": VECTOR, "outputs": [], **fields}
    request = multipart(
        REGISTER, {"input": model_input(**fields)}, {"weight": ("model.bin", content)}
    )
    headers = {**PREFLIGHT, **({"authorization": f"Bearer {token}"} if token else {})}
    response = await api.http.post("/graphql", headers=headers, **request)
    body: dict[str, Any] = response.json()
    return body


async def test_a_registration_goes_on_while_another_users_uploads_spin_in_their_checks(
    settings: Settings, mongodb_url: str
) -> None:
    """Alice's archives never finish loading; Bob's small ONNX model registers while both
    of hers are still being checked (the second waiting behind her first, not taking the
    other slot), and hers are then refused for their time, with nothing stored."""
    spinning = scripted(SpinsWhenLoaded())
    # Alice's loads are bounded only once Bob has his answer (below), so that how long
    # his check takes on a busy machine cannot decide the order.
    patient = {"auth": "on", "check_slots": 2, "torchscript_check_seconds": 3600}
    secured = create_app(settings.model_copy(update=patient), mongodb_url=mongodb_url)
    async with serving(secured) as api:
        store = secured.state.services.tokens
        alice = (await store.create("alice", [Scope.write]))[1]
        bob = (await store.create("bob", [Scope.write]))[1]
        checks: ModelInspector = secured.state.services.inspector

        first = asyncio.create_task(
            registered(api, alice, spinning, engine="TORCHSCRIPT", architecture="Spin")
        )
        async with asyncio.timeout(300):
            while not checks.caged_loads:  # her archive is loading in the cage
                await asyncio.sleep(0.01)
        second = asyncio.create_task(
            registered(api, alice, spinning, engine="TORCHSCRIPT", architecture="Spin", version=2)
        )
        async with asyncio.timeout(300):
            while checks.slots.queued("alice") == 0:  # behind her first
                await asyncio.sleep(0.01)

        body = await registered(api, bob, LOADABLE, engine="ONNX", inputs=[], architecture="Gemm")
        assert not body.get("errors"), body["errors"]
        assert body["data"]["registerModel"]["inputs"][0]["name"] == "x"
        assert not first.done() and not second.done()

        checks.torchscript_seconds = 1
        for registration in (first, second):
            message = refusal(await registration)
            assert "loading it as TorchScript" in message, message
            assert "took longer than 1 s" in message, message

        listed = await api.http.post(
            "/graphql",
            json={"query": "{ models(first: 10) { nodes { architecture } } }"},
            headers={"authorization": f"Bearer {bob}"},
        )
        assert listed.json()["data"]["models"]["nodes"] == [{"architecture": "Gemm"}]
        assert len(stored_blobs(settings)) == 1 and staged_files(settings) == []


async def test_what_a_torchscript_archive_runs_when_loaded_runs_in_the_cage_only(
    settings: Settings, mongodb_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """The web process and its check helpers share this process's output: had either
    loaded the archive, its word would be there. It was loaded (it ran out of time)."""
    word = f"loaded-{uuid.uuid4().hex}"
    hostile = scripted(PrintsThenSpinsWhenLoaded(word))
    quick = settings.model_copy(update={"torchscript_check_seconds": 2})
    async with serving(create_app(quick, mongodb_url=mongodb_url)) as api:
        body = await registered(api, None, hostile, engine="TORCHSCRIPT", architecture="Print")
    message = refusal(body)
    assert "took longer than 2 s" in message, message
    out, err = capfd.readouterr()
    assert word not in out and word not in err
    assert stored_blobs(settings) == [] and staged_files(settings) == []


@pytest.mark.skipif(
    bubblewrap() is None, reason="only bubblewrap's cage hides the host's files from the load"
)
async def test_a_torchscript_archive_loaded_in_the_cage_cannot_write_the_hosts_files(
    tmp_path: Path,
) -> None:
    """The cage's load on its own: this archive's code names aten::from_file, which the
    source check refuses before any load; the cage is what stands behind that check."""
    target = tmp_path / "written"
    archive = tmp_path / "model.pt"
    archive.write_bytes(scripted(WritesAFileWhenLoaded(str(target))))
    checks = ModelInspector(allow_pickle=False)
    try:
        with pytest.raises(BadUserInput) as refused:
            await checks.torchscript_load(archive)
    finally:
        checks.close()
    # It ran, and failed: the cage has no such folder, and writes nothing outside it.
    assert "torch cannot load it as TorchScript" in str(refused.value), refused.value
    assert not target.exists()

    torch.jit.load(str(archive))  # loaded here, it writes the file
    assert target.exists()


async def test_registrations_given_up_while_checked_or_waiting_free_their_slots(
    settings: Settings, mongodb_url: str
) -> None:
    """A client that goes away ends its check: the cage loading its archive is stopped,
    its place in the queue is given up, and the next registration is checked at once."""
    spinning = scripted(SpinsWhenLoaded())
    one = {"auth": "on", "check_slots": 1, "torchscript_check_seconds": 3600}
    app = create_app(settings.model_copy(update=one), mongodb_url=mongodb_url)
    async with serving(app) as api:
        carol = (await app.state.services.tokens.create("carol", [Scope.write]))[1]
        checks: ModelInspector = app.state.services.inspector
        loading = asyncio.create_task(
            registered(api, carol, spinning, engine="TORCHSCRIPT", architecture="Spin")
        )
        async with asyncio.timeout(300):
            while not checks.caged_loads:
                await asyncio.sleep(0.01)
        waiting = asyncio.create_task(
            registered(api, carol, LOADABLE, engine="ONNX", inputs=[], architecture="Gone")
        )
        async with asyncio.timeout(300):
            while checks.slots.queued("carol") == 0:
                await asyncio.sleep(0.01)

        for registration in (waiting, loading):
            registration.cancel()
            with pytest.raises(asyncio.CancelledError):
                await registration
        assert checks.slots.queued("carol") == 0
        async with asyncio.timeout(300):
            while checks.caged_loads:  # the cage is ended, not left spinning
                await asyncio.sleep(0.01)

        body = await registered(api, carol, LOADABLE, engine="ONNX", inputs=[], architecture="Next")
        assert not body.get("errors"), body["errors"]
    assert len(stored_blobs(settings)) == 1 and staged_files(settings) == []
