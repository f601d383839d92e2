"""Attacks replayed against the real server process: each must be refused and leave the
server answering (issue 13's table; the rows not yet covered are listed in the README's
Security section)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from conftest import PREFLIGHT, REGISTER, Api, model_input, modelci_serve, multipart, serving
from starlette.applications import Starlette
from test_jobs import CLAIM, PROFILE, cpu
from test_observability import sample

from modelci.core.identity import Scope
from modelci.core.usecases import MAX_ALIASES_PER_MODEL
from modelci.server.app import create_app
from modelci.server.device_registry import MAX_DEVICES_PER_TOKEN
from modelci.server.embedded import free_port
from modelci.server.registry import MAX_DYNAMIC_RESULTS
from modelci.server.settings import Settings


def fragment_bomb(levels: int) -> str:
    """``{ ...F<levels> }`` where each fragment spreads the one below it twice: a text of
    ~40 bytes a level that expands to 2**levels fields."""
    fragments = ["fragment F0 on Query { __typename }"] + [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    return "{ ...F%d }\n%s" % (levels, "\n".join(fragments))


def test_a_fragment_bomb_is_refused_and_the_server_keeps_answering(tmp_path: Path) -> None:
    with modelci_serve(tmp_path, free_port(), workers="0") as (hub, server):
        with httpx.Client(base_url=hub, timeout=60) as client, ThreadPoolExecutor(4) as pool:
            bombs = [
                pool.submit(client.post, "/graphql", json={"query": fragment_bomb(levels)})
                for levels in (20, 39, 39)
            ]
            assert client.get("/healthz").json() == {"status": "ok"}
            for bomb in bombs:
                body = bomb.result().json()
                assert body.get("data") is None
                (error,) = body["errors"]
                assert error["extensions"]["code"] == "BAD_USER_INPUT"
                assert "fragments are spread out" in error["message"]
            # A small fragment nest is still a query like any other.
            body = client.post("/graphql", json={"query": fragment_bomb(3)}).json()
            assert body == {"data": {"__typename": "Query"}}
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


async def test_multipart_text_fields_and_part_headers_are_bounded(api: Api) -> None:
    """95 text fields of 1 MiB from any token once cost 96 MiB of memory; a 100 KB file
    name was a plain-text 500. Both are refused in the API's shape, with nothing stored."""
    operations = json.dumps({"query": REGISTER, "variables": {"input": model_input()}})
    many_fields = {f"f{i}": "x" * (1 << 20) for i in range(4)}
    response = await api.http.post(
        "/graphql",
        headers=PREFLIGHT,
        data={"operations": operations, "map": "{}", **many_fields},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    request = multipart(REGISTER, {"input": model_input()}, {"weight": ("a" * 100_000, b"w")})
    response = await api.http.post("/graphql", headers=PREFLIGHT, **request)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert (await api.data("{ models { nodes { id } } }"))["models"]["nodes"] == []


async def test_one_upload_mapped_to_two_registrations_is_bad_input(api: Api) -> None:
    """One file part named by two registerModel fields: the second once got an internal
    error, after the first had stored its model."""
    two = (
        "mutation($a: ModelInput!, $b: ModelInput!, $w: Upload!, $v: Upload!) {"
        " first: registerModel(input: $a, weight: $w) { id }"
        " second: registerModel(input: $b, weight: $v) { id } }"
    )
    variables = {"a": model_input(version=1), "b": model_input(version=2), "w": None, "v": None}
    response = await api.http.post(
        "/graphql",
        headers=PREFLIGHT,
        data={
            "operations": json.dumps({"query": two, "variables": variables}),
            "map": json.dumps({"0": ["variables.w", "variables.v"]}),
        },
        files={"0": ("w.bin", b"weights")},
    )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "mapped to 2 variables" in error["message"]
    assert (await api.data("{ models { nodes { id } } }"))["models"]["nodes"] == []

    # One variable holding the upload, named by both fields.
    reused = two.replace("$v: Upload!", "").replace("weight: $v", "weight: $w")
    response = await api.http.post(
        "/graphql",
        headers=PREFLIGHT,
        data={
            "operations": json.dumps({"query": reused, "variables": variables}),
            "map": json.dumps({"0": ["variables.w"]}),
        },
        files={"0": ("w.bin", b"weights")},
    )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert "$w: an upload is used once, and the operation names it 2 times" in error["message"]
    assert (await api.data("{ models { nodes { id } } }"))["models"]["nodes"] == []


async def test_variables_nested_thousands_deep_are_bad_input(api: Api) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = '{"query": "{ __typename }", "variables": {"x": %s}}' % deep
    response = await api.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    response = await api.http.post(
        "/graphql",
        headers=PREFLIGHT,
        data={"operations": body, "map": "{}"},
        files={"0": ("w", b"w")},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_with_auth_off_only_loopback_host_names_are_served(api: Api) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 must not reach a
    hub that has no tokens to stop it."""
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        response = await api.http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"host": host}
        )
        assert response.status_code == 400, host
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        response = await api.http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"host": host}
        )
        assert response.json() == {"data": {"__typename": "Query"}}, host


async def test_metrics_need_a_token_and_count_refusals_as_errors(
    settings: Settings, mongodb_url: str
) -> None:
    secured = create_app(settings.model_copy(update={"auth": "on"}), mongodb_url=mongodb_url)
    async with serving(secured) as api:
        assert (await api.http.get("/metrics")).status_code == 401
        _, reader = await secured.state.services.tokens.create("reader", [Scope.read])
        headers = {"authorization": f"Bearer {reader}"}
        refused = await api.http.post(
            "/graphql",
            json={"query": 'mutation { deleteModel(id: "0123456789abcdef01234567") { id } }'},
            headers=headers,
        )
        assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        text = (await api.http.get("/metrics", headers=headers)).text
        labels = {"operation": "deleteModel", "type": "mutation", "outcome": "error"}
        assert sample(text, "modelci_graphql_operations_total", **labels) == 1


def test_slow_headers_stalled_bodies_and_upload_floods_are_cut_off(tmp_path: Path) -> None:
    """Connections that send headers or bodies a trickle at a time, or many uploads at
    once from one token, are closed or refused; the staging folder is left empty."""
    limits = {
        "workers": "0",
        "request_head_timeout_s": "1",
        "body_idle_timeout_s": "1",
        "max_uploads_per_token": "2",
    }
    with modelci_serve(tmp_path, free_port(), **limits) as (hub, _):
        port = int(hub.rsplit(":", 1)[1])
        slow_heads = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        for connection in slow_heads:
            connection.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        stalled = []
        for _ in range(2):  # two uploads that never finish: the most one token may hold
            connection = socket.create_connection(("127.0.0.1", port))
            connection.sendall(
                b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Apollo-Require-Preflight: true\r\nContent-Length: 100000\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
                b'--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{}\r\n'
                b'--b\r\nContent-Disposition: form-data; name="0"; filename="w"\r\n\r\nxx'
            )
            stalled.append(connection)
        # While they hang, a third upload from the same caller is refused at once...
        request = multipart(REGISTER, {"input": model_input()}, {"weight": ("w", b"w")})
        third = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, **request)
        assert third.status_code == 429
        assert third.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_REQUESTS"
        # ...and every one of them is closed by the server (EOF), the uploads with 408.
        for connection in slow_heads:
            connection.settimeout(30)
            assert connection.recv(1024) == b""
        for connection in stalled:
            connection.settimeout(30)
            answer = b""
            while chunk := connection.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert list((tmp_path / "staging").iterdir()) == []
        # With those gone, the same caller uploads again.
        third = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, **request)
        assert third.json()["data"]["registerModel"]["id"]


async def test_one_token_cannot_flood_the_queue_nor_hold_others_behind_it(
    settings: Settings, mongodb_url: str
) -> None:
    """One write token once queued 2 016 jobs in 9 s, and everyone else waited behind
    them (first in, first out). Now a token has a quota of queued jobs, and workers take
    turns between the tokens that have jobs waiting."""
    quota = {"auth": "on", "max_queued_jobs_per_token": 3}
    secured = create_app(settings.model_copy(update=quota), mongodb_url=mongodb_url)
    async with serving(secured) as api:
        store = secured.state.services.tokens
        tokens = {
            name: (await store.create(name, [scope]))[1]
            for name, scope in (("alice", Scope.write), ("bob", Scope.write), ("w", Scope.worker))
        }

        async def call(token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
            headers = {"authorization": f"Bearer {token}"}
            response = await api.http.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            return dict(response.json())

        async def register(token: str, version: int, profile: bool = False) -> dict[str, Any]:
            request = multipart(
                REGISTER.replace("$weight)", "$weight, profile: %s)" % str(profile).lower()),
                {"input": model_input(version=version)},
                {"weight": ("w", b"w%d" % version)},
            )
            headers = {**PREFLIGHT, "authorization": f"Bearer {token}"}
            return dict((await api.http.post("/graphql", headers=headers, **request)).json())

        alice = (await register(tokens["alice"], 1))["data"]["registerModel"]["id"]
        bob = (await register(tokens["bob"], 2))["data"]["registerModel"]["id"]
        for _ in range(3):
            assert not (await call(tokens["alice"], PROFILE, {"modelId": alice})).get("errors")
        refused = await call(tokens["alice"], PROFILE, {"modelId": alice})
        assert refused["errors"][0]["extensions"]["code"] == "TOO_MANY_REQUESTS"
        assert "3 jobs queued" in refused["errors"][0]["message"]
        # A registration that would queue a job past the quota stores nothing.
        body = await register(tokens["alice"], 3, profile=True)
        assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_REQUESTS"
        listed = await call(tokens["alice"], "{ models { nodes { version } } }", {})
        assert sorted(node["version"] for node in listed["data"]["models"]["nodes"]) == [1, 2]

        # Requests at the same instant cannot count past the quota either: with one
        # place left, one of 30 takes it.
        queued_jobs = "{ profilingJobs(status: QUEUED) { nodes { id } } }"
        waiting = (await call(tokens["alice"], queued_jobs, {}))["data"]["profilingJobs"]
        cancel = "mutation($id: ID!) { cancelProfilingJob(id: $id) { id } }"
        await call(tokens["alice"], cancel, {"id": waiting["nodes"][0]["id"]})
        answers = await asyncio.gather(
            *(call(tokens["alice"], PROFILE, {"modelId": alice}) for _ in range(30))
        )
        codes = [
            answer["errors"][0]["extensions"]["code"] for answer in answers if "errors" in answer
        ]
        assert codes == ["TOO_MANY_REQUESTS"] * 29
        waiting = (await call(tokens["alice"], queued_jobs, {}))["data"]["profilingJobs"]
        assert len(waiting["nodes"]) == 3
        # So can registrations that queue a job: of 6 at once for the last place, one
        # stores its model, and the others store nothing.
        await call(tokens["alice"], cancel, {"id": waiting["nodes"][0]["id"]})

        async def register_and_profile(version: int) -> dict[str, Any]:
            request = multipart(
                REGISTER.replace("$weight)", "$weight, convert: false, profile: true)"),
                {"input": model_input(version=version)},
                {"weight": ("w", b"w%d" % version)},
            )
            headers = {**PREFLIGHT, "authorization": f"Bearer {tokens['alice']}"}
            return dict((await api.http.post("/graphql", headers=headers, **request)).json())

        registered = await asyncio.gather(*(register_and_profile(100 + n) for n in range(6)))
        stored = [body for body in registered if not body.get("errors")]
        assert len(stored) == 1, registered
        listed = await call(tokens["alice"], "{ models { nodes { version } } }", {})
        versions = sorted(node["version"] for node in listed["data"]["models"]["nodes"])
        assert versions == [1, 2, stored[0]["data"]["registerModel"]["version"]]
        waiting = (await call(tokens["alice"], queued_jobs, {}))["data"]["profilingJobs"]
        assert len(waiting["nodes"]) == 3

        assert not (await call(tokens["bob"], PROFILE, {"modelId": bob})).get("errors")
        claimed = []
        for _ in range(3):
            body = await call(tokens["w"], CLAIM, {"worker": "w1", "devices": [cpu()]})
            claimed.append(body["data"]["claimProfilingJob"]["modelId"])
        # Bob's one job, queued after Alice's three, runs second, not fourth.
        assert claimed == [alice, bob, alice]


async def test_infinite_floats_are_bad_input_and_pages_keep_working(api: Api) -> None:
    """GraphQL's Float literal ``1e400`` parses to infinity: written, it made every page
    that selected the field fail for every caller. Now every such write is refused and
    changes nothing."""
    model = await api.register()
    listed = """{ models(first: 10) {
      nodes { id metric { name value } profileResult { dynamicResults { batch } } } } }"""
    figures = "avg: 1, p50: 1, p95: 1"
    update = "mutation($id: ID!) { updateModel(id: $id, input: {metric: [%s]}) { id } }"
    writes = [
        update % '{name: "acc", value: 1e400}',
        update % '{name: "loss", value: -1e400}',
        'mutation($id: ID!) { registerDynamicProfilingResult(modelId: $id, result: {ip: "1", '
        'deviceId: "cpu", deviceName: "CPU", batch: 1, '
        "memory: {totalMemory: 1, memoryUsage: 1, utilization: 1e400}, "
        f"latency: {{initializationLatency: {{{figures}}}, preprocessLatency: {{{figures}}}, "
        f"inferenceLatency: {{avg: 1, p50: 1e400, p95: 1}}, postprocessLatency: {{{figures}}}}}, "
        "throughput: {batchFormationThroughput: 1, preprocessThroughput: 1, "
        "inferenceThroughput: 1e400, postprocessThroughput: 1}}) { id } }",
    ]
    for write in writes:
        assert await api.error_code(write, {"id": model["id"]}) == "BAD_USER_INPUT", write
    nodes = (await api.data(listed))["models"]["nodes"]
    assert nodes == [
        {"id": model["id"], "metric": model["metric"], "profileResult": {"dynamicResults": []}}
    ]


async def test_a_lone_surrogate_in_a_request_gets_a_json_error(api: Api) -> None:
    """``"\\ud800"`` is valid JSON but not UTF-8 once decoded: an error message quoting
    it must still come back as the API's JSON error, not a plain-text 500."""
    for body in (
        '{"query": "query($a: Task) { models(task: $a) { nodes { id } } }", '
        '"variables": {"a": "\\ud800"}}',
        '{"query": "query($a: ProfileFilterInput) { models(profile: $a) { nodes { id } } }", '
        '"variables": {"a": {"\\ud800": 1}}}',
        '{"query": "query A { __typename }", "operationName": "\\ud800"}',
    ):
        response = await api.http.post(
            "/graphql", content=body.encode(), headers={"content-type": "application/json"}
        )
        assert response.headers["content-type"].startswith("application/json"), response.text
        errors = response.json()["errors"]
        assert errors and errors[0]["message"], body
    # The same through a multipart registration, whose answer the view builds itself.
    operations = (
        '{"query": "mutation($task: Task!, $weight: Upload!) { registerModel(input: '
        '{architecture: \\"net\\", framework: PyTorch, engine: TORCHSCRIPT, version: 1, '
        'dataset: \\"d\\", task: $task}, weight: $weight) { id } }", '
        '"variables": {"task": "\\ud800", "weight": null}}'
    )
    response = await api.http.post(
        "/graphql",
        headers=PREFLIGHT,
        data={"operations": operations, "map": '{"0": ["variables.weight"]}'},
        files={"0": ("model.pt", b"weights", "application/octet-stream")},
    )
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await api.data("{ __typename }")) == {"__typename": "Query"}


async def test_what_one_model_or_worker_may_hold_is_bounded(api: Api) -> None:
    """Appends, aliases and device reports once grew without bound (1 024 dynamic results
    made each append cost 0.6 s; one worker token reported 20 000 devices): each has a
    cap: refused with what to do (a write at the cap changes nothing), or, for devices,
    a token's oldest replaced by its newest."""
    model_id = (await api.register())["id"]
    append = (
        "mutation($id: ID!, $batch: Int!) { registerDynamicProfilingResult(modelId: $id, "
        'result: {ip: "10.0.0.7", deviceId: "cpu", deviceName: "CPU", batch: $batch, '
        "memory: {totalMemory: 1, memoryUsage: 1, utilization: 0.5}, "
        "latency: {initializationLatency: {%s}, preprocessLatency: {%s}, "
        "inferenceLatency: {%s}, postprocessLatency: {%s}}, "
        "throughput: {batchFormationThroughput: 1, preprocessThroughput: 1, "
        "inferenceThroughput: 100, postprocessThroughput: 1}}) { id } }"
    ) % (("avg: 0.01, p50: 0.01, p95: 0.01",) * 4)
    for batch in range(1, MAX_DYNAMIC_RESULTS + 1):
        await api.data(append, {"id": model_id, "batch": batch})
    refused = await api.post(append, {"id": model_id, "batch": MAX_DYNAMIC_RESULTS + 1})
    assert refused["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert f"holds {MAX_DYNAMIC_RESULTS} dynamic results" in refused["errors"][0]["message"]
    forced = append.replace(
        "registerDynamicProfilingResult(modelId: $id,",
        "updateDynamicProfilingResult(modelId: $id, forceInsert: true,",
    )
    refused = await api.post(forced, {"id": model_id, "batch": MAX_DYNAMIC_RESULTS + 1})
    assert f"holds {MAX_DYNAMIC_RESULTS} dynamic results" in refused["errors"][0]["message"]
    count = "query($id: ID!) { model(id: $id) { profileResult { dynamicResults { batch } } } }"
    results = (await api.data(count, {"id": model_id}))["model"]["profileResult"]
    assert len(results["dynamicResults"]) == MAX_DYNAMIC_RESULTS

    point = "mutation($a: String!, $id: ID!) { setModelAlias(alias: $a, modelId: $id) { alias } }"
    for number in range(MAX_ALIASES_PER_MODEL):
        await api.data(point, {"a": f"stage-{number}", "id": model_id})
    assert await api.error_code(point, {"a": "one-too-many", "id": model_id}) == "CONFLICT"
    await api.data(point, {"a": "stage-0", "id": model_id})  # pointing one again is no more

    many = [{**cpu(), "deviceId": f"cuda:{number}"} for number in range(65)]
    claim = await api.post(CLAIM, {"worker": "w1", "devices": many})
    assert claim["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await api.data("{ devices { deviceId } }"))["devices"] == []
    # One token's workers keep their newest devices on record, and no other's are lost.
    for host in range(MAX_DEVICES_PER_TOKEN // 64 + 2):
        fleet = [{**cpu(f"host-{host}"), "deviceId": f"cuda:{number}"} for number in range(64)]
        assert (await api.post(CLAIM, {"worker": "w1", "devices": fleet}))["data"]
    kept = (await api.data("{ devices { host deviceId } }"))["devices"]
    assert len(kept) == MAX_DEVICES_PER_TOKEN
    newest = f"host-{MAX_DEVICES_PER_TOKEN // 64 + 1}"
    assert sum(device["host"] == newest for device in kept) == 64
    assert not any(device["host"] == "host-0" for device in kept)


async def test_no_variant_outlives_its_source_deleted_meanwhile(
    app: Starlette, api: Api, onnx_model: Path, tmp_path: Path
) -> None:
    """deleteModel(cascade: true) while a worker registered a variant once left the
    variant with its source gone, and an export of that hub could not be imported. Both
    orders of the race are forced here by running one side at a chosen point of the
    other (the real inspection and the real delete run): the delete between the
    variant's look at its source and its insert, and the variant's whole registration
    between the delete's look at the variants and its removal of the source."""
    import torch
    from networks import SmallConvNet

    source_file = tmp_path / "small.torchscript.pt"
    torch.jit.script(SmallConvNet().eval()).save(str(source_file))
    inputs = [{"name": "input", "shape": [-1, 3, 16, 16], "dtype": "TYPE_FP32"}]
    delete = "mutation($id: ID!) { deleteModel(id: $id, cascade: true) { id } }"
    services = app.state.services

    async def source_and_job(name: str) -> tuple[str, str]:
        source = await api.register(
            source_file.read_bytes(),
            "s.pt",
            architecture=name,
            engine="TORCHSCRIPT",
            inputs=inputs,
            outputs=[{"name": "output", "shape": [-1, 10], "dtype": "TYPE_FP32"}],
        )
        claim = {"worker": "w1", "devices": [cpu()], "kinds": ["CONVERT"]}
        job = (await api.data(CLAIM, claim))["claimProfilingJob"]
        assert job["modelId"] == source["id"]
        return source["id"], job["id"]

    async def register_variant(source_id: str, job_id: str) -> dict[str, Any]:
        variant = """
        mutation($source: ID!, $weight: Upload!, $job: ID, $worker: String) {
          registerConvertedModel(sourceId: $source, engine: ONNX, weight: $weight,
            jobId: $job, worker: $worker, conversion: {sourceEngine: TORCHSCRIPT,
            batchSizes: [1], maxAbsDiff: 0, maxRelDiff: 0, tolerance: 0.001}) { id } }"""
        variables = {"source": source_id, "weight": None, "job": job_id, "worker": "w1"}
        return await api.post(variant, variables, {"weight": ("v.onnx", onnx_model.read_bytes())})

    # The source is deleted while its variant's file is inspected.
    source_id, job_id = await source_and_job("DeletedDuringInspection")
    inspect = services.inspector.checked

    async def deleting_first(*args: Any, **kwargs: Any) -> Any:
        services.inspector.checked = inspect
        await api.data(delete, {"id": source_id})
        return await inspect(*args, **kwargs)

    services.inspector.checked = deleting_first
    refused = await register_variant(source_id, job_id)
    assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND", refused
    assert "was deleted while its variant was registered" in refused["errors"][0]["message"]

    # The variant is registered after the delete looked for variants, before it removed
    # the source.
    source_id, job_id = await source_and_job("RegisteredDuringDelete")
    delete_each = services.registry.delete_each
    registered: list[dict[str, Any]] = []

    async def registering_first(*args: Any, **kwargs: Any) -> Any:
        services.registry.delete_each = delete_each
        registered.append(await register_variant(source_id, job_id))
        return await delete_each(*args, **kwargs)

    services.registry.delete_each = registering_first
    deleted = await api.data(delete, {"id": source_id})
    assert deleted["deleteModel"]["id"] == source_id
    assert registered[0]["data"]["registerConvertedModel"]["id"]  # it landed, and went too

    everything = "{ models(first: 100) { nodes { id parentModelId } } }"
    nodes = (await api.data(everything))["models"]["nodes"]
    assert [node for node in nodes if node["parentModelId"]] == []


async def test_a_worker_name_is_not_a_key_to_its_job(settings: Settings, mongodb_url: str) -> None:
    """Any read token sees which worker runs a job (profilingJobs { worker }); worker
    token B once finished worker A's job by giving A's name. Writes for a job now need the
    token that claimed it as well as the worker's name."""
    secured = create_app(settings.model_copy(update={"auth": "on"}), mongodb_url=mongodb_url)
    async with serving(secured) as api:
        store = secured.state.services.tokens
        tokens = {
            name: {"authorization": f"Bearer {(await store.create(name, [scope]))[1]}"}
            for name, scope in (("alice", Scope.write), ("a", Scope.worker), ("b", Scope.worker))
        }

        async def call(who: str, query: str, **variables: Any) -> dict[str, Any]:
            body = {"query": query, "variables": variables}
            response = await api.http.post("/graphql", json=body, headers=tokens[who])
            return dict(response.json())

        request = multipart(REGISTER, {"input": model_input()}, {"weight": ("w", b"w")})
        registered = await api.http.post(
            "/graphql", headers={**PREFLIGHT, **tokens["alice"]}, **request
        )
        model_id = registered.json()["data"]["registerModel"]["id"]
        assert not (await call("alice", PROFILE, modelId=model_id)).get("errors")
        claimed = await call("a", CLAIM, worker="worker-a", devices=[cpu()], kinds=["PROFILE"])
        job_id = claimed["data"]["claimProfilingJob"]["id"]
        seen = await call("b", "{ profilingJobs { nodes { id worker } } }")
        assert {"id": job_id, "worker": "worker-a"} in seen["data"]["profilingJobs"]["nodes"]

        fenced = {"id": job_id, "model": model_id, "worker": "worker-a"}
        writes = [
            "mutation($id: ID!, $worker: String!) { finishProfilingJob(id: $id, "
            'worker: $worker, error: "taken over") { status } }',
            "mutation($id: ID!, $worker: String!) { heartbeatProfilingJob(id: $id, "
            "worker: $worker, progress: 0.5) { status } }",
            "mutation($id: ID!, $worker: String!) { releaseProfilingJob(id: $id, "
            "worker: $worker) { status } }",
            "mutation($id: ID!, $model: ID!, $worker: String!) { registerStaticProfilingResult("
            "modelId: $model, jobId: $id, worker: $worker, result: {parameters: 1, flops: 2, "
            "memory: 3, mread: 4, mwrite: 5, mrw: 9}) { id } }",
        ]
        # Another token given the claiming token's name (as when a name is reused).
        twin = (await store.create("a", [Scope.worker]))[1]
        tokens["twin of a"] = {"authorization": f"Bearer {twin}"}
        for write in writes:
            variables = {name: fenced[name] for name in fenced if f"${name}" in write}
            for who in ("b", "twin of a"):
                refused = await call(who, write, **variables)
                assert refused["errors"][0]["extensions"]["code"] == "CONFLICT", refused
                assert "token" in refused["errors"][0]["message"]
        job = await call(
            "a", "query($id: ID!) { profilingJob(id: $id) { status worker } }", id=job_id
        )
        assert job["data"]["profilingJob"] == {"status": "RUNNING", "worker": "worker-a"}
        static = await call(
            "alice",
            "query($id: ID!) { model(id: $id) { profileResult { staticResult { flops } } } }",
            id=model_id,
        )
        assert static["data"]["model"]["profileResult"]["staticResult"] is None
        # Worker token b reporting devices by the hundred replaces only its own oldest.
        for host in range(MAX_DEVICES_PER_TOKEN // 64 + 1):
            fleet = [{**cpu(f"b-{host}"), "deviceId": f"cuda:{n}"} for n in range(64)]
            await call("b", CLAIM, worker="worker-b", devices=fleet, kinds=["PROFILE"])
        listed = await call("a", "{ devices { host deviceId } }")
        hosts = [device["host"] for device in listed["data"]["devices"]]
        assert "gpu-host-1" in hosts  # a's, reported with its claim
        assert len(hosts) == MAX_DEVICES_PER_TOKEN + 1
        done = await call(
            "a",
            writes[0].replace('error: "taken over"', 'message: "done"'),
            **{"id": job_id, "worker": "worker-a"},
        )
        assert done["data"]["finishProfilingJob"]["status"] == "SUCCEEDED"


async def test_a_worker_queues_profiling_of_a_variant_only_if_the_conversion_asked(
    api: Api, onnx_model: Path, tmp_path: Path
) -> None:
    """A variant registered with profile: true for a conversion queued without profiling
    once queued a job on the conversion owner's quota that nobody asked for."""
    import torch
    from networks import SmallConvNet

    source_file = tmp_path / "small.torchscript.pt"
    torch.jit.script(SmallConvNet().eval()).save(str(source_file))
    source = await api.register(
        source_file.read_bytes(),
        "s.pt",
        engine="TORCHSCRIPT",
        inputs=[{"name": "input", "shape": [-1, 3, 16, 16], "dtype": "TYPE_FP32"}],
        outputs=[{"name": "output", "shape": [-1, 10], "dtype": "TYPE_FP32"}],
    )
    claim = {"worker": "w1", "devices": [cpu()], "kinds": ["CONVERT"]}
    job = (await api.data(CLAIM, claim))["claimProfilingJob"]
    variant = """
    mutation($source: ID!, $weight: Upload!, $job: ID, $worker: String) {
      registerConvertedModel(sourceId: $source, engine: ONNX, weight: $weight, profile: true,
        jobId: $job, worker: $worker, conversion: {sourceEngine: TORCHSCRIPT,
        batchSizes: [1], maxAbsDiff: 0, maxRelDiff: 0, tolerance: 0.001}) { id } }"""
    variables = {"source": source["id"], "weight": None, "job": job["id"], "worker": "w1"}
    made = await api.data(variant, variables, {"weight": ("v.onnx", onnx_model.read_bytes())})
    jobs = "query($id: ID) { profilingJobs(modelId: $id) { nodes { id } } }"
    found = await api.data(jobs, {"id": made["registerConvertedModel"]["id"]})
    assert found["profilingJobs"]["nodes"] == []


async def test_a_subscription_over_plain_http_is_told_to_use_a_websocket(api: Api) -> None:
    """A subscription POSTed over HTTP (streamed as multipart/mixed, or plain JSON) once
    answered INTERNAL_SERVER_ERROR with a traceback in the log."""
    model = await api.register()
    job = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]
    follow = "subscription($id: ID!) { profilingJob(id: $id) { id status } }"
    for accept in ('multipart/mixed;subscriptionSpec="1.0",application/json', "application/json"):
        response = await api.http.post(
            "/graphql",
            json={"query": follow, "variables": {"id": job["id"]}},
            headers={"accept": accept},
        )
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (accept, response.text)
        assert "WebSocket" in error["message"]
