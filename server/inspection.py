"""Checking an uploaded weight against what the user declared, before it is registered.

The format is told from the content, in a helper process, so that a hostile or huge
file never runs (nor blocks the event loop) in the web process. Zip archives (PyTorch's
formats) by their central directory, under caps on entries, unpacked size and
compression ratio, and then what loading or running them would do: a ``.pt2`` whose
weights or constants are pickled (which ``torch.export.load`` unpickles in full) is
refused unless pickles are allowed, and a TorchScript or ``.pt2`` graph calling an
operator that reaches files, processes or the network is refused (``inspect_archive``).
ONNX files: ``onnx.checker`` (with its full check), and a real load in onnxruntime,
the engine that will profile the model, so that a file that can never run is refused
rather than failing its profiling job later. The helper is bounded in time (overrun:
killed, replaced) and memory (RLIMIT_AS); the web process imports neither torch nor
onnxruntime. An ONNX graph's inputs and outputs, and a ``.pt2``'s graph signature (read
from its JSON, never loaded), fill in what the user left out, and a contradiction is
BAD_USER_INPUT naming the field. A file declared as another format than it is is told
what it is and what to declare.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import multiprocessing
import os
import resource
import signal
import sys
import zipfile
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from modelci.profiling.formats import (
    ArchiveLimits,
    ModelSignature,
    UnsupportedModel,
    check_torchscript_graphs,
    inspect_archive,
    is_onnx,
    onnx_signature,
)
from modelci.schema.domain import Engine, IOShape, ModelFields, WeightFormat
from modelci.schema.errors import BadUserInput
from modelci.schema.weight_formats import WEIGHT_FORMATS

from .embedded import stop_with_parent

logger = logging.getLogger("modelci.inspection")

MiB = 1024**2
GiB = 1024**3

# What a file declared with one of WEIGHT_FORMATS' engines must be, in a refusal.
FORMAT_OF_ENGINE = {
    Engine.ONNX: "an ONNX model",
    Engine.TORCHSCRIPT: "a TorchScript archive",
    Engine.PYTORCH: "a torch.export archive (.pt2) or an allowed pickle",
}


class ModelInspector:
    """Checks uploads; ONNX files and zip archives in one helper process, one at a time.

    ``check_seconds`` bounds one check; the memory one check may use is
    ``memory_headroom`` plus ``memory_per_byte`` times the file's size (the checker
    holds three copies of the model at its peak, onnxruntime two and a half), at most
    ``memory_cap``, which also bounds the helper's whole address space.
    ``archive_limits``: what a zip upload may hold (entries, unpacked size, ratio).
    """

    def __init__(
        self,
        allow_pickle: bool,
        *,
        check_seconds: float = 120.0,
        memory_headroom: int = 1 * GiB,
        memory_per_byte: int = 4,
        memory_cap: int | None = None,
        archive_limits: ArchiveLimits | None = None,
    ) -> None:
        self.allow_pickle = allow_pickle
        self.archive_limits = archive_limits or ArchiveLimits()
        self.check_seconds = check_seconds
        self.memory_headroom = memory_headroom
        self.memory_per_byte = memory_per_byte
        self.memory_cap = memory_cap or max(4 * GiB, physical_memory() // 2)
        self.start_seconds = 120.0  # importing onnx and onnxruntime, not the user's time
        # find_spec, not import: the web process never loads onnxruntime itself.
        self.load_in_onnxruntime = importlib.util.find_spec("onnxruntime") is not None
        if not self.load_in_onnxruntime:
            logger.warning(
                "onnxruntime is not installed (the profiling extra): ONNX uploads are checked "
                "by onnx.checker only, so a model onnxruntime cannot load may be registered"
            )
        self.helper: CheckHelper | None = None
        self.lock = asyncio.Lock()  # the helper checks one file at a time

    async def checked(
        self, fields: ModelFields, path: Path
    ) -> tuple[ModelFields, WeightFormat | None]:
        """The fields completed from the file, and its format; BAD_USER_INPUT if they disagree."""
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
        check_declaration(fields, found)
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

    async def in_helper(self, check: str, kind: str, path: Path) -> Any:
        """What the helper answers for the file; BAD_USER_INPUT if it refuses it, overruns
        its time or memory bound, or crashes on it."""
        size = (await asyncio.to_thread(path.stat)).st_size
        budget = min(self.memory_cap, self.memory_headroom + self.memory_per_byte * size)
        async with self.lock:
            helper = await self.ready_helper()
            try:
                helper.connection.send(
                    (kind, str(path), budget, self.allow_pickle, self.archive_limits)
                )
                verdict, detail = await helper.reply(self.check_seconds)
            except TimeoutError:
                self.retire_helper()
                raise refused(
                    f"checking it took longer than {self.check_seconds:g} s, the bound for one "
                    f"{check}, and was stopped"
                ) from None
            except (EOFError, OSError):  # the helper died during the check
                how = self.retire_helper()
                raise refused(
                    f"the {check} crashed on it ({how}); loading it may need more than the "
                    f"{budget // MiB} MiB of memory one check may use"
                ) from None
            except BaseException:  # cancelled: the helper's answer would reach the next one
                self.retire_helper()
                raise
            if verdict == "memory":
                self.retire_helper()  # what a failed allocation left behind is not worth keeping
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

    async def ready_helper(self) -> CheckHelper:
        if self.helper is not None and not self.helper.process.is_alive():
            self.retire_helper()  # died between checks (killed from outside, say)
        if self.helper is None:
            self.helper = await CheckHelper.started(
                self.memory_cap, self.load_in_onnxruntime, self.start_seconds
            )
        return self.helper

    def retire_helper(self) -> str:
        """Stop the helper (a fresh one starts for the next check); how it ended."""
        helper, self.helper = self.helper, None
        return helper.stop() if helper is not None else "not running"

    def close(self) -> None:
        self.retire_helper()


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
    """The helper process: check the files the server sends, one at a time, until it goes."""
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
                inspection = inspect_archive(path, allow_pickle, limits)
                found = inspection.format
                if found is WeightFormat.TORCHSCRIPT and importlib.util.find_spec("torch"):
                    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
                    import_torch()  # once, outside the check's own memory bound
                    limit = min(hard, address_space() + budget)
                    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
                    check_torchscript_graphs(path)
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


def import_torch() -> None:
    """Import torch (if installed) in the helper, on one thread: loading a TorchScript
    archive needs it, and its import is the server's time and memory, not the upload's."""
    if "torch" in sys.modules:
        return
    import torch

    torch.set_num_threads(1)


def address_space() -> int:
    """Bytes of address space this process maps now (what RLIMIT_AS counts)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_declaration(fields: ModelFields, weight_format: WeightFormat) -> None:
    """BAD_USER_INPUT unless the declared framework and engine fit the file's format; the
    message says what the file is and what to declare instead."""
    rule = WEIGHT_FORMATS[weight_format]
    framework, engine = rule.framework, rule.engine.value
    if fields.engine is not rule.engine or (framework and fields.framework is not framework):
        wanted = (
            f"framework {framework.value}, engine {engine}" if framework else f"engine {engine}"
        )
        raise BadUserInput(
            f"weight: the file is {rule.name}, not what the input declares "
            f"(framework {fields.framework.value}, engine {fields.engine.value}); register it "
            f"with {wanted}",
            field="weight",
        )


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
