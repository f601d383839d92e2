"""Automatic versions: left out at registration, the hub gives the next number of the
architecture, task and dataset, atomically, and says which."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import Api, model_input, modelci_serve
from test_choosing import convertible, variant_of

from modelci.client import ModelHub
from modelci.core.errors import BadUserInput, Conflict
from modelci.server.embedded import free_port

REGISTER = """
mutation($input: ModelInput!, $weight: Upload!) {
  registerModel(input: $input, weight: $weight, convert: false) { id version engine }
}"""
DELETE = "mutation($id: ID!) { deleteModel(id: $id) { id } }"
VERSION = "query($id: ID!) { model(id: $id) { version } }"


async def registered(api: Api, weight: bytes = b"weights", **fields: Any) -> dict[str, Any]:
    fields.setdefault("version", None)
    data = await api.data(
        REGISTER, {"input": model_input(**fields)}, {"weight": ("model.bin", weight)}
    )
    model: dict[str, Any] = data["registerModel"]
    return model


async def test_versions_left_out_are_numbered_per_architecture_task_and_dataset(
    api: Api,
) -> None:
    assert [(await registered(api))["version"] for _ in range(3)] == [1, 2, 3]
    # Another dataset, task or architecture is a line of its own.
    assert (await registered(api, dataset="CIFAR10"))["version"] == 1
    assert (await registered(api, task="Other"))["version"] == 1
    assert (await registered(api, architecture="ResNet18"))["version"] == 1
    # Framework and engine are not: an ONNX export of the same training is the next one.
    onnx_line = await registered(api, engine="CUSTOMIZED")
    assert onnx_line["version"] == 4

    # A version given by hand is never given again, nor any below the highest.
    assert (await registered(api, version=10))["version"] == 10
    assert (await registered(api))["version"] == 11
    taken = await api.post(
        REGISTER, {"input": model_input(version=11)}, {"weight": ("model.bin", b"w")}
    )
    assert taken["errors"][0]["extensions"]["code"] == "CONFLICT"

    # A deleted version's number is not reused.
    last = await registered(api)
    assert last["version"] == 12
    await api.data(DELETE, {"id": last["id"]})
    assert (await registered(api))["version"] == 13


async def test_the_last_version_number_is_the_last_graphql_can_carry(api: Api) -> None:
    """A version past 32 bits would break every page listing the model: it is refused,
    and a line that reached the last number says so instead of giving a number past it."""
    last = 2**31 - 1
    assert (await registered(api, architecture="Huge", version=last))["version"] == last
    full = await api.post(
        REGISTER,
        {"input": model_input(architecture="Huge", version=None)},
        {"weight": ("model.bin", b"w")},
    )
    (error,) = full["errors"]
    assert error["extensions"]["code"] == "CONFLICT" and str(last) in error["message"], error
    past = await api.post(
        REGISTER,
        {"input": model_input(architecture="Huger", version=last + 1)},
        {"weight": ("model.bin", b"w")},
    )
    assert past["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", past
    page = await api.data("query { models(first: 100) { nodes { architecture version } } }")
    assert {"architecture": "Huge", "version": last} in page["models"]["nodes"]


async def test_a_refused_registration_takes_no_number(api: Api) -> None:
    assert (await registered(api, architecture="Gapless"))["version"] == 1
    # A TorchScript engine declared for bytes that are no TorchScript file: refused by
    # the weight checks, before a number is taken.
    refused = await api.post(
        REGISTER,
        {"input": model_input(architecture="Gapless", version=None, engine="TORCHSCRIPT")},
        {"weight": ("model.pt", b"not a model")},
    )
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await registered(api, architecture="Gapless"))["version"] == 2


async def test_variants_keep_their_sources_version(api: Api) -> None:
    await registered(api, architecture="Numbered")
    source = await convertible(api, architecture="Numbered", version=None)
    assert (await api.data(VERSION, {"id": source}))["model"]["version"] == 2
    variant = await variant_of(api, source)
    assert (await api.data(VERSION, {"id": variant}))["model"]["version"] == 2
    assert (await registered(api, architecture="Numbered"))["version"] == 3


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelHub]:
    folder = tmp_path_factory.mktemp("hub")
    with modelci_serve(folder, free_port(), workers="0") as (url, _), ModelHub(url) as client:
        yield client


FIELDS = {
    "architecture": "Concurrent",
    "framework": "PyTorch",
    "engine": "NONE",
    "dataset": "ImageNet",
    "task": "Image_Classification",
}


def test_twenty_registrations_at_once_get_twenty_consecutive_numbers(hub: ModelHub) -> None:
    def register(index: int) -> int:
        with ModelHub(hub.url) as client:  # a connection of its own, as another process
            weight = f"weights {index}".encode()
            return client.register_model(weight, convert=False, **FIELDS).version

    with ThreadPoolExecutor(max_workers=20) as pool:
        versions = list(pool.map(register, range(20)))
    assert sorted(versions) == list(range(1, 21))
    stored = hub.get_models(architecture="Concurrent")
    assert sorted(model.version for model in stored) == list(range(1, 21))


def test_the_client_leaves_the_version_to_the_hub(hub: ModelHub) -> None:
    first = hub.register_model(b"a", convert=False, **{**FIELDS, "architecture": "Client"})
    second = hub.register_model(b"b", convert=False, **{**FIELDS, "architecture": "Client"})
    assert (first.version, second.version) == (1, 2)
    with pytest.raises(Conflict, match="v2"):
        hub.register_model(b"c", convert=False, version=2, **{**FIELDS, "architecture": "Client"})
    with pytest.raises(BadUserInput, match="version"):
        hub.register_model(b"c", convert=False, version=0, **{**FIELDS, "architecture": "Client"})
