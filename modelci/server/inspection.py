"""Checking an uploaded weight against what the user declared, before it is registered.

The format is told from the content, off the web process, so that a hostile or huge
file never runs (nor blocks the event loop) there. Zip archives (PyTorch's formats) are
read by their central directory in a helper process, under caps on entries, unpacked
size and compression ratio, and then what loading or running them would do: a ``.pt2``
whose weights or constants are pickled (which ``torch.export.load`` unpickles in full)
is refused unless pickles are allowed, and a TorchScript or ``.pt2`` graph calling an
operator that reaches files, processes or the network is refused (``inspect_archive``).
A TorchScript archive that passes is then loaded, which runs its ``__setstate__``
code, and its compiled graphs checked: in the cage (``modelci.cage``, the worker's too),
never in the web process or a helper, under a short time bound of its own.
ONNX files: ``onnx.checker`` (with its full check), and a real load in onnxruntime,
the engine that will profile the model, so that a file that can never run is refused
rather than failing its profiling job later (neither runs code the file brings:
onnxruntime refuses an operator of a domain it has no kernel for). Helpers are bounded
in time (overrun: killed, replaced) and memory (RLIMIT_AS); the web process imports
neither torch nor onnxruntime. An ONNX graph's inputs and outputs, and a ``.pt2``'s
graph signature (read from its JSON, never loaded), fill in what the user left out, and
a contradiction is BAD_USER_INPUT naming the field. A file declared as another format
than it is is told what it is and what to declare.

Checks run a few at once (``CheckSlots``): one token's uploads take turns among
themselves, so that one user's hostile uploads hold at most their share of the slots
and everyone else's registrations go on past them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import multiprocessing
import os
import resource
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from modelci.cage import inspect_step
from modelci.cage.formats import (
    ArchiveLimits,
    ModelSignature,
    UnsupportedModel,
    damaged_zip,
    inspect_archive,
    is_onnx,
    onnx_signature,
)
from modelci.cage.inspect_step import INSPECT_LOADING, INSPECT_PASSED
from modelci.cage.runner import CageError, CageStopped, Limits, run_caged
from modelci.core.domain import Engine, IOShape, ModelFields, WeightFormat
from modelci.core.errors import BadUserInput
from modelci.core.usecases import check_declaration

from .embedded import stop_with_parent

logger = logging.getLogger("modelci.inspection")

MiB = 1024**2
GiB = 1024**3

# What a file declared with one of WEIGHT_FORMATS' engines must be, in a refusal.
FORMAT_OF_ENGINE = {
    Engine.ONNX: "an ONNX model",
    Engine.TORCHSCRIPT: "a TorchScript archive",
    Engine.PYTORCH: "a torch.export archive (.pt2) or an allowed pickle",
    Engine.AOTINDUCTOR: "an AOTInductor package (.pt2) made by the hub's conversion",
}


class CheckSlots:
    """At most ``total`` checks at once, at most ``per_owner`` of them one owner's.

    A freed slot goes to the owners with checks waiting in turn (the one served longest
    ago first), each owner's own checks first in, first out: an owner with many uploads
    waits behind itself, not in front of everyone else."""

    def __init__(self, total: int, per_owner: int) -> None:
        self.total = total
        self.per_owner = max(1, min(per_owner, total))
        self.held: dict[str | None, int] = {}
        self.waiting: dict[str | None, deque[asyncio.Future[None]]] = {}  # in turn order

    def busy(self) -> int:
        return sum(self.held.values())

    def queued(self, owner: str | None) -> int:
        """How many of ``owner``'s checks wait for a slot."""
        return len(self.waiting.get(owner, ()))

    @asynccontextmanager
    async def held_by(self, owner: str | None) -> AsyncIterator[None]:
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(owner, deque()).append(granted)
        self.grant()
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(owner)  # granted as the waiter was cancelled
            else:
                self.forget(owner, granted)
            raise
        try:
            yield
        finally:
            self.release(owner)

    def grant(self) -> None:
        while self.busy() < self.total:
            owner = next(
                (owner for owner in self.waiting if self.held.get(owner, 0) < self.per_owner),
                _NOBODY,
            )
            if owner is _NOBODY:
                return
            waiters = self.waiting.pop(owner)  # back of the turn order, if more wait
            waiter = waiters.popleft()
            if waiters:
                self.waiting[owner] = waiters
            self.held[owner] = self.held.get(owner, 0) + 1
            waiter.set_result(None)

    def release(self, owner: str | None) -> None:
        self.held[owner] -= 1
        if not self.held[owner]:
            del self.held[owner]
        self.grant()

    def forget(self, owner: str | None, waiter: asyncio.Future[None]) -> None:
        waiters = self.waiting.get(owner)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self.waiting[owner]


_NOBODY: Any = object()  # no owner may take a slot now (None is an owner: auth off)


class ModelInspector:
    """Checks uploads: ONNX files and zip directories in helper processes, TorchScript
    loads in the cage, ``slots`` checks at once, ``slots_per_owner`` of them one owner's.

    ``check_seconds`` bounds one helper check; ``torchscript_seconds`` one TorchScript
    load in the cage, from the moment the cage has imported torch. The memory one check
    may use is ``memory_headroom`` plus ``memory_per_byte`` times the file's size (the
    checker holds three copies of the model at its peak, onnxruntime two and a half), at
    most ``memory_cap``, which also bounds each helper's whole address space.
    ``archive_limits``: what a zip upload may hold (entries, unpacked size, ratio).
    """

    def __init__(
        self,
        allow_pickle: bool,
        *,
        check_seconds: float = 120.0,
        torchscript_seconds: float = 30.0,
        slots: int = 2,
        slots_per_owner: int = 1,
        memory_headroom: int = 1 * GiB,
        memory_per_byte: int = 4,
        memory_cap: int | None = None,
        archive_limits: ArchiveLimits | None = None,
    ) -> None:
        self.allow_pickle = allow_pickle
        self.archive_limits = archive_limits or ArchiveLimits()
        self.check_seconds = check_seconds
        self.torchscript_seconds = torchscript_seconds
        self.memory_headroom = memory_headroom
        self.memory_per_byte = memory_per_byte
        self.memory_cap = memory_cap or max(4 * GiB, physical_memory() // 2)
        # Starting a helper (onnx, onnxruntime) or the cage (torch): not the user's time.
        self.start_seconds = 120.0
        # find_spec, not import: the web process never loads onnxruntime (nor torch) itself.
        self.load_in_onnxruntime = importlib.util.find_spec("onnxruntime") is not None
        if not self.load_in_onnxruntime:
            logger.warning(
                "onnxruntime is not installed (the profiling extra): ONNX uploads are checked "
                "by onnx.checker only, so a model onnxruntime cannot load may be registered"
            )
        self.load_torchscript = importlib.util.find_spec("torch") is not None
        self.slots = CheckSlots(slots, slots_per_owner)
        self.helpers: set[CheckHelper] = set()  # every live helper, idle or checking
        self.idle_helpers: list[CheckHelper] = []
        self.caged_loads: set[Path] = set()  # TorchScript archives loading in the cage now
        # A thread waits on each cage's pipes: threads of their own, so that long loads never
        # hold the threads the rest of the server's blocking work runs on.
        self.cage_threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="modelci-cage")
        self.closing = threading.Event()

    async def checked(
        self, fields: ModelFields, path: Path, owner: str | None = None
    ) -> tuple[ModelFields, WeightFormat | None]:
        """The fields completed from the file, and its format; BAD_USER_INPUT if they
        disagree. ``owner`` (the uploading token's name) takes its turn for a slot."""
        async with self.slots.held_by(owner):
            return await self.checked_now(fields, path)

    async def checked_now(
        self, fields: ModelFields, path: Path
    ) -> tuple[ModelFields, WeightFormat | None]:
        found, signature = None, None
        # Only the end of the file is read here (and off the loop): the directory, and what
        # the archive holds, are read by the helper.
        if await asyncio.to_thread(zipfile.is_zipfile, path):
            found, signature = await self.archive_inspection(path)
        if found is None and fields.engine is Engine.ONNX:
            signature = await self.onnx_signature(path)
            return with_signature(fields, signature), WeightFormat.ONNX
        if found is None:
            if fields.engine in FORMAT_OF_ENGINE:
                damaged = await asyncio.to_thread(damaged_zip, path)
                if damaged is not None:  # not "none of these": a PyTorch file cut short
                    raise refused(str(damaged))
                if await self.in_helper("ONNX probe", "probe", path):
                    check_declaration(fields, WeightFormat.ONNX)  # says what to declare
                raise BadUserInput(
                    f"weight: engine {fields.engine.value} needs {FORMAT_OF_ENGINE[fields.engine]}"
                    ", and this file is none",
                    field="weight",
                )
            return fields, None  # a format the hub stores but does not read (TFS, TRT, …)
        if found is WeightFormat.TORCH_PICKLE and not self.allow_pickle:
            raise BadUserInput(
                "weight: a pickled PyTorch model runs arbitrary code when loaded; this server "
                "refuses it unless started with --allow-pickle. Register TorchScript, "
                "torch.export (.pt2) or ONNX instead.",
                field="weight",
            )
        check_declaration(fields, found)  # before any load: what to declare is cheap to say
        if found is WeightFormat.TORCHSCRIPT and self.load_torchscript:
            await self.torchscript_load(path)
        if signature is not None:  # a .pt2's: its program takes its inputs by position
            return with_signature(fields, signature, match_names=False), found
        return fields, found

    async def onnx_signature(self, path: Path) -> ModelSignature:
        """The graph's inputs and outputs, from the helper; BAD_USER_INPUT if it refuses."""
        signature: ModelSignature = await self.in_helper("ONNX check", "onnx", path)
        return signature

    async def archive_inspection(
        self, path: Path
    ) -> tuple[WeightFormat | None, ModelSignature | None]:
        """The PyTorch format of a zip upload, from the helper (None: another zip), and a
        ``.pt2``'s signature; BAD_USER_INPUT past the archive limits, or if loading or
        running it would run code or reach files, processes or the network."""
        value, signature = await self.in_helper("archive check", "archive", path)
        return None if value is None else WeightFormat(value), signature

    async def budget(self, path: Path) -> int:
        """The bytes of memory one check of the file may use."""
        size = (await asyncio.to_thread(path.stat)).st_size
        return min(self.memory_cap, self.memory_headroom + self.memory_per_byte * size)

    async def in_helper(self, check: str, kind: str, path: Path) -> Any:
        """What a helper answers for the file; BAD_USER_INPUT if it refuses it, overruns
        its time or memory bound, or crashes on it."""
        budget = await self.budget(path)
        helper = await self.ready_helper()
        keep = False
        try:
            helper.connection.send(
                (kind, str(path), budget, self.allow_pickle, self.archive_limits)
            )
            verdict, detail = await helper.reply(self.check_seconds)
        except TimeoutError:
            raise refused(
                f"checking it took longer than {self.check_seconds:g} s, the bound for one "
                f"{check}, and was stopped"
            ) from None
        except (EOFError, OSError):  # the helper died during the check
            how = self.retire_helper(helper)
            raise refused(
                f"the {check} crashed on it ({how}); loading it may need more than the "
                f"{budget // MiB} MiB of memory one check may use"
            ) from None
        else:
            # What a failed allocation left behind is not worth keeping.
            keep = verdict != "memory"
        finally:
            # Not kept after an overrun, a crash or a cancellation either: an answer still
            # to come would reach the next check.
            if keep:
                self.idle_helpers.append(helper)
            elif helper in self.helpers:
                self.retire_helper(helper)
        return answer(check, verdict, detail, budget)

    async def ready_helper(self) -> CheckHelper:
        """An idle helper, or a new one: never more than one a slot."""
        while self.idle_helpers:
            helper = self.idle_helpers.pop()
            if helper.process.is_alive():
                return helper
            self.retire_helper(helper)  # died between checks (killed from outside, say)
        helper = await CheckHelper.started(
            self.memory_cap, self.load_in_onnxruntime, self.start_seconds
        )
        self.helpers.add(helper)
        return helper

    def retire_helper(self, helper: CheckHelper) -> str:
        """Stop a helper (a fresh one starts when one is needed); how it ended."""
        self.helpers.discard(helper)
        if helper in self.idle_helpers:
            self.idle_helpers.remove(helper)
        return helper.stop()

    async def torchscript_load(self, path: Path) -> None:
        """Load the (source-checked) TorchScript archive in the cage and check its compiled
        graphs; BAD_USER_INPUT if that refuses it, overruns its bounds or crashes."""
        budget = await self.budget(path)
        cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            verdict, detail = await loop.run_in_executor(
                self.cage_threads, self.load_in_cage, path, budget, cancelled
            )
        except BaseException:
            cancelled.set()  # the cage is ended at its next look (cage.POLL_S)
            raise
        if verdict == "cancelled":
            raise refused("the server stopped while checking it")
        if verdict == "time":
            raise refused(
                f"loading it as TorchScript (which runs its __setstate__ code) took longer "
                f"than {self.torchscript_seconds:g} s, the bound for one {TORCHSCRIPT_LOAD}, "
                "and was stopped"
            )
        if verdict == "crashed":
            raise refused(f"the {TORCHSCRIPT_LOAD} crashed on it ({detail})")
        answer(TORCHSCRIPT_LOAD, verdict, detail, budget)

    def load_in_cage(self, path: Path, budget: int, cancelled: threading.Event) -> tuple[str, Any]:
        """The cage's verdict on loading the archive (a thread's work: ``run_caged`` waits
        on the cage's pipes): ok, refused, memory, failed (each as a helper's), time or
        crashed."""
        loading_since: float | None = None

        def should_stop() -> bool:
            if cancelled.is_set() or self.closing.is_set():
                return True
            # Read at each look: the bound is the inspector's as it is now.
            return (
                loading_since is not None
                and time.monotonic() - loading_since > self.torchscript_seconds
            )

        bound = self.start_seconds + self.torchscript_seconds
        limits = Limits(
            wall_s=bound,
            cpu_s=math.ceil(bound),
            memory_bytes=self.memory_cap,
            file_bytes=CAGE_FILE_BYTES,
        )
        scratch = Path(tempfile.mkdtemp(prefix="modelci-inspect-"))
        verdict: tuple[str, Any] = ("crashed", "it ended without a verdict")
        try:
            for message in run_caged(
                inspect_step.__name__,
                {"step": "inspect", "budget": budget},
                path,
                scratch,
                limits,
                should_stop,
            ):
                if message["type"] == "log" and message["message"] == INSPECT_LOADING:
                    loading_since = time.monotonic()
                    self.caged_loads.add(path)
                elif message["type"] == "log" and message["message"] == INSPECT_PASSED:
                    verdict = ("ok", None)
                elif message["type"] == "error":
                    verdict = caged_error(message)
        except CageStopped:
            if cancelled.is_set() or self.closing.is_set():
                return "cancelled", None
            return "time", None
        except CageError as error:
            if loading_since is not None and "wall time" in str(error):
                return "time", None
            return "crashed", str(error)
        finally:
            self.caged_loads.discard(path)
            shutil.rmtree(scratch, ignore_errors=True)
        return verdict

    def close(self) -> None:
        self.closing.set()  # a cage still loading is ended at its next look
        self.cage_threads.shutdown(wait=False, cancel_futures=True)
        for helper in list(self.helpers):
            self.retire_helper(helper)


TORCHSCRIPT_LOAD = "TorchScript load"
CAGE_FILE_BYTES = 64 * MiB  # loading writes no file; a bound, not room to work in


def caged_error(message: dict[str, Any]) -> tuple[str, Any]:
    """The verdict a helper would give for the cage's ``error`` message."""
    text: str = message["message"]
    if text.startswith("UnsupportedModel: "):
        return "refused", text.removeprefix("UnsupportedModel: ")
    if text.startswith("MemoryError: "):
        return "memory", None
    return "failed", text[:300]


def answer(check: str, verdict: str, detail: Any, budget: int) -> Any:
    """The detail of an ``ok`` verdict; BAD_USER_INPUT saying why for any other."""
    if verdict == "ok":
        return detail
    if verdict == "memory":
        raise refused(
            f"checking it needs more than the {budget // MiB} MiB of memory one {check} may use"
        )
    if verdict == "failed":
        logger.warning("the %s failed unexpectedly: %s", check, detail)
        raise refused(f"the {check} failed on it: {detail}")
    raise refused(str(detail))


def refused(reason: str) -> BadUserInput:
    return BadUserInput(f"weight: {reason.rstrip('.')}. Nothing was stored.", field="weight")


class CheckHelper:
    """The helper process that checks ONNX files and zip archives, and the pipe to it."""

    def __init__(self, process: BaseProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection

    @classmethod
    async def started(
        cls, memory_cap: int, load_in_onnxruntime: bool, start_seconds: float
    ) -> CheckHelper:
        """A helper that has imported what it needs. Started from the event loop's thread:
        the parent-death signal fires when the thread that started the child ends."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=serve_checks,
            args=(theirs, os.getpid(), memory_cap, load_in_onnxruntime),
            name="modelci-model-check",
            daemon=True,
        )
        process.start()
        theirs.close()
        helper = cls(process, ours)
        try:
            await helper.reply(start_seconds)
        except (TimeoutError, EOFError, OSError) as error:
            how = helper.stop()
            raise RuntimeError(f"the model check helper did not start ({how})") from error
        except BaseException:
            helper.stop()
            raise
        return helper

    async def reply(self, seconds: float) -> Any:
        """The helper's next message; TimeoutError after ``seconds``, EOFError if it died."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        descriptor = self.connection.fileno()
        loop.add_reader(descriptor, wake)
        try:
            await asyncio.wait_for(readable, seconds)
        finally:
            loop.remove_reader(descriptor)
        return self.connection.recv()

    def stop(self) -> str:
        """Kill the process (if it still runs) and reap it; how it ended."""
        self.process.kill()
        self.process.join()
        self.connection.close()
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


def serve_checks(
    connection: Connection, parent: int, memory_cap: int, load_in_onnxruntime: bool
) -> None:
    """The helper process: check the files the server sends, one at a time, until it
    goes. Nothing here runs code an upload carries: ONNX and zip directories are data."""
    stop_with_parent()
    if os.getppid() != parent:
        return  # the server died before the signal was asked for
    if load_in_onnxruntime:
        import onnxruntime  # noqa: F401  (imported now, not within a check's time)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > memory_cap:
        hard = memory_cap
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    connection.send(("ready", None))
    while True:
        try:
            kind, path, budget, allow_pickle, limits = connection.recv()
        except EOFError:
            return
        resource.setrlimit(resource.RLIMIT_AS, (min(hard, address_space() + budget), hard))
        reply: tuple[str, Any]
        try:
            if kind == "archive":
                # Reads the directory, code and JSON; loading TorchScript is the cage's.
                inspection = inspect_archive(path, allow_pickle, limits)
                found = inspection.format
                reply = ("ok", (None if found is None else found.value, inspection.signature))
            elif kind == "probe":
                reply = ("ok", is_onnx(Path(path)))
            else:
                reply = ("ok", onnx_signature(path, load_in_onnxruntime))
        except UnsupportedModel as error:
            reply = ("refused", str(error))
        except MemoryError:
            reply = ("memory", None)
        except Exception as error:  # onnx's own bugs, say: the server decides what to tell
            reply = ("failed", f"{type(error).__name__}: {error}"[:300])
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        connection.send(reply)


def address_space() -> int:
    """Bytes of address space this process maps now (what RLIMIT_AS counts)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def with_signature(
    fields: ModelFields, signature: ModelSignature, *, match_names: bool = True
) -> ModelFields:
    """The fields with the file's inputs and outputs where none were declared; declared
    ones checked against the file's. ``match_names`` False: the model takes and returns
    its tensors by position (a ``.pt2``'s program; its output names are internal node
    names), so declared tensors are matched by position and keep their names."""
    return fields.model_copy(
        update={
            field: reconciled(
                field, getattr(fields, field), getattr(signature, field), match_names=match_names
            )
            for field in ("inputs", "outputs")
        }
    )


def reconciled(
    field: str, declared: list[IOShape], graph: list[IOShape], *, match_names: bool = True
) -> list[IOShape]:
    """The declared tensors if the graph agrees with them, the graph's if none were declared."""
    if not declared:
        return graph
    if not match_names:
        if len(declared) != len(graph):
            raise BadUserInput(
                f"input.{field}: the graph has {len(graph)} {field}, not {len(declared)}",
                field=field,
            )
        graph = [
            actual.model_copy(update={"name": tensor.name})
            for tensor, actual in zip(declared, graph, strict=True)
        ]
    named = {tensor.name: tensor for tensor in graph}
    if sorted(named) != sorted(tensor.name for tensor in declared):
        raise BadUserInput(
            f"input.{field}: the graph's {field} are {sorted(named)}, "
            f"not {sorted(tensor.name for tensor in declared)}",
            field=field,
        )
    for index, tensor in enumerate(declared):
        actual = named[tensor.name]
        where = f"input.{field}[{index}]"
        if len(tensor.shape) != len(actual.shape) or any(
            graph_dim != -1 and graph_dim != declared_dim
            for declared_dim, graph_dim in zip(tensor.shape, actual.shape, strict=True)
        ):
            raise BadUserInput(
                f"{where}.shape: {tensor.shape} contradicts the graph's {actual.shape} "
                "(-1: dynamic)",
                field=field,
            )
        if tensor.dtype is not actual.dtype:
            raise BadUserInput(
                f"{where}.dtype: {tensor.dtype.value} contradicts the graph's {actual.dtype.value}",
                field=field,
            )
    return declared
