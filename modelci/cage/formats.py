"""Model file formats, told apart by content rather than by file name.

TorchScript archives, ``torch.export`` archives (``.pt2``) and ``torch.save`` pickles
are all zip files; their member names tell them apart, from a zip directory read under
caps (entries, unpacked size, compression ratio: ``ArchiveLimits``), never by unpacking.
ONNX files are protobuf, checked with ``onnx.checker``; at registration also by a full
check and a real load in onnxruntime (``registration_signature``, run by the server in
a helper process). A pickle is never loaded here: unpickling runs arbitrary code.

``inspect_archive`` (run by the server in its helper process, loading nothing) also
refuses PyTorch archives that would run code when loaded or reach files, processes or
the network when run: ``.pt2`` archives with pickled weights or constants (unless
pickles are trusted), and graphs calling operators outside the pure tensor namespaces
(``HOSTILE_OPERATORS``); a TorchScript archive's compiled graphs are checked by loading
it in the cage (``check_torchscript_graphs``).
A ``.pt2``'s inputs and outputs are read from its serialized graph signature
(``export_signature``), as an ONNX graph's are: the archive is never loaded. An
AOTInductor package (also ``.pt2``, holding a compiled shared library) is recognised; the
hub makes these itself, by converting a ``torch.export`` program, takes them in as a
conversion's variants only, and runs them only in the cage.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickletools
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import onnx

from modelci.core.domain import DataType, IOShape, WeightFormat

from .tensors import onnx_io_shapes


class UnsupportedModel(ValueError):
    """The file is no model this hub can load; the message says why."""


class RefusedOnnx(UnsupportedModel):
    """The file is an ONNX model, but not one the hub can load (the message says why)."""


class DamagedModel(UnsupportedModel):
    """The file starts as a format the hub reads but cannot be read to its end: damaged,
    most likely cut short in a copy or a download."""


ZIP_START = b"PK\x03\x04"  # a zip's first local header: TorchScript, .pt2, torch.save
# An ONNX model as protobuf writes it: ir_version (field 1) first, then the next field
# present among producer_name … opset_import (fields 2 to 8).
ONNX_NEXT_FIELD_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42})


def damaged_zip(path: Path) -> DamagedModel | None:
    """A file that starts as a zip archive but has no directory at its end (where a
    reader starts): cut short, most likely."""
    with open(path, "rb") as file:
        if file.read(len(ZIP_START)) != ZIP_START or zipfile.is_zipfile(file):
            return None
        size = file.seek(0, os.SEEK_END)
    return DamagedModel(
        "it starts as a zip archive (as TorchScript, .pt2 and torch.save files do) but has "
        f"no directory at its end: it is damaged, most likely cut short (it has {size} "
        "bytes); upload the whole file"
    )


def starts_as_onnx(path: Path) -> bool:
    with open(path, "rb") as file:
        head = file.read(3)
    return (
        len(head) == 3
        and head[0] == 0x08
        and 1 <= head[1] <= 15
        and (head[2] in ONNX_NEXT_FIELD_TAGS)
    )


MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True)
class ArchiveLimits:
    """What a zip upload may hold, read from its central directory: nothing is unpacked.

    ``ratio``: an entry that unpacks to more than ``ratio`` times its packed size is a
    bomb, once it unpacks to more than ``ratio_floor`` (PyTorch stores tensors packed
    as is, ratio 1; small text members compress well and are harmless). ``directory``
    bounds the central directory itself, which is read into memory to count entries.
    """

    entries: int = 10_000
    unpacked: int = 8 * GiB
    ratio: int = 200
    ratio_floor: int = 1 * MiB
    directory: int = 64 * MiB


# The end of central directory record, and the zip64 locator and record it may point to.
END_OF_DIRECTORY = struct.Struct("<4s4H2LH")
ZIP64_LOCATOR = struct.Struct("<4sLQL")
ZIP64_END_OF_DIRECTORY = struct.Struct("<4sQ2H2L4Q")
DIRECTORY_ENTRY = 46  # the fixed part of a central directory header


def zip_entries(file: BinaryIO, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    """The zip's members, refused (UnsupportedModel) past ``limits``; the entry count is
    capped before the directory is parsed into objects, the sizes are the directory's."""
    start, size = directory_bounds(file)
    if size > limits.directory:
        raise UnsupportedModel(
            f"a zip archive whose directory is over {size_text(limits.directory)}"
        )
    file.seek(start)
    directory = file.read(size)
    count, at = 0, 0
    while directory.startswith(b"PK\x01\x02", at) and at + DIRECTORY_ENTRY <= len(directory):
        count += 1
        if count > limits.entries:
            raise UnsupportedModel(f"a zip archive of more than {limits.entries} entries")
        name, extra, comment = struct.unpack_from("<3H", directory, at + 28)
        at += DIRECTORY_ENTRY + name + extra + comment
    del directory
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as error:
        raise UnsupportedModel(f"a damaged zip archive ({error})") from None
    if len(entries) > limits.entries:  # the directory zipfile found is not the one counted
        raise UnsupportedModel(f"a zip archive of more than {limits.entries} entries")
    unpacked = 0
    for entry in entries:
        unpacked += entry.file_size
        if unpacked > limits.unpacked:
            raise UnsupportedModel(
                f"a zip archive that unpacks to more than {size_text(limits.unpacked)}"
            )
        if entry.file_size > max(limits.ratio_floor, limits.ratio * entry.compress_size):
            raise UnsupportedModel(
                f"a zip bomb: its member {trimmed(entry.filename, 100)!r} unpacks to "
                f"{size_text(entry.file_size)} from {entry.compress_size} bytes, more than "
                f"{limits.ratio} times its packed size"
            )
    return entries


def size_text(size: int) -> str:
    return f"{size / GiB:g} GiB" if size >= GiB else f"{size / MiB:g} MiB"


def directory_bounds(file: BinaryIO) -> tuple[int, int]:
    """Where the central directory starts and its size, as ``zipfile`` finds them: after
    the end of directory record (the last one), or its zip64 record."""
    end = file.seek(0, os.SEEK_END)
    tail_start = max(0, end - END_OF_DIRECTORY.size - 0xFFFF)
    file.seek(tail_start)
    tail = file.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + END_OF_DIRECTORY.size > len(tail):
        raise UnsupportedModel("a damaged zip archive (no end of central directory)")
    _, _, _, _, count, size, offset, _ = END_OF_DIRECTORY.unpack_from(tail, at)
    position = tail_start + at
    if count == 0xFFFF or 0xFFFFFFFF in (size, offset):  # zip64
        locator = position - ZIP64_LOCATOR.size
        record = locator - ZIP64_END_OF_DIRECTORY.size
        if record < 0:
            raise UnsupportedModel("a damaged zip archive (no zip64 end of central directory)")
        file.seek(record)
        fields = ZIP64_END_OF_DIRECTORY.unpack(file.read(ZIP64_END_OF_DIRECTORY.size))
        file.seek(locator)
        signature = ZIP64_LOCATOR.unpack(file.read(ZIP64_LOCATOR.size))[0]
        if fields[0] != b"PK\x06\x06" or signature != b"PK\x06\x07":
            raise UnsupportedModel("a damaged zip archive (no zip64 end of central directory)")
        position, size = record, fields[8]
    if size > position:
        raise UnsupportedModel("a damaged zip archive (its directory lies outside it)")
    return position - size, size


def pytorch_format(names: list[str]) -> WeightFormat | None:
    """The PyTorch format a zip's member names say; None if they say none."""
    if any("/data/aotinductor/" in name for name in names):
        return WeightFormat.AOTI_PACKAGE
    if any(name.endswith(("/archive_format", "/models/model.json")) for name in names):
        return WeightFormat.TORCH_EXPORT
    if any("/code/" in name for name in names) and any(
        name.endswith("/constants.pkl") for name in names
    ):
        return WeightFormat.TORCHSCRIPT
    if any(name.endswith("/data.pkl") for name in names):
        return WeightFormat.TORCH_PICKLE
    return None


def archive_format(path: Path, limits: ArchiveLimits = ArchiveLimits()) -> WeightFormat | None:
    """The PyTorch format of a zip archive (names only: nothing is unpickled); None if no
    zip. UnsupportedModel for a zip past ``limits``, a damaged one, or one that is no
    PyTorch model."""
    damaged = damaged_zip(path)
    if damaged is not None:
        raise damaged
    with open(path, "rb") as file:
        if not zipfile.is_zipfile(file):
            return None
        names = [entry.filename for entry in zip_entries(file, limits)]
    found = pytorch_format(names)
    if found is None:
        raise UnsupportedModel("a zip archive that is no PyTorch model")
    return found


# Operators a model may call: the tensor namespaces. Custom namespaces (and c10d,
# profiler, debugprims, …) are where code that reaches the world lives, and new ones
# appear with every release, so they are refused as a whole. Within the allowed
# namespaces aten has some 3,800 operators: too many to list what is allowed, and
# the few that touch files are named instead (a test checks that every operator of
# theirs taking a file name is in this list, so a torch upgrade that adds one fails it).
OPERATOR_NAMESPACES = frozenset({"aten", "prim", "quantized"})
HOSTILE_OPERATORS = frozenset({"aten::from_file", "aten::save", "aten::load"})
# TorchScript classes backed by C++ (torch.classes.<namespace>): the quantized packed
# weights are the ones a model needs; the others (profiling, c10d stores) reach out.
TORCHBIND_NAMESPACES = frozenset({"quantized"})
# torch.export's higher-order operators that only run the subgraphs they carry.
EXPORT_HIGHER_ORDER = frozenset(
    {"cond", "while_loop", "map_impl", "scan", "wrap_with_set_grad_enabled", "wrap_with_autocast"}
)
EXPORT_PYTHON_OPERATORS = {
    "_operator": frozenset(
        [
            "getitem",
            "add",
            "sub",
            "mul",
            "truediv",
            "floordiv",
            "mod",
            "pow",
            "neg",
            "pos",
            "abs",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "and_",
            "or_",
            "xor",
            "not_",
            "invert",
            "lshift",
            "rshift",
            "matmul",
        ]
    ),
    "math": frozenset(
        [
            "ceil",
            "floor",
            "trunc",
            "sqrt",
            "exp",
            "log",
            "log2",
            "log10",
            "pow",
            "sin",
            "cos",
            "tan",
            "tanh",
            "fabs",
            "isnan",
            "isinf",
            "isfinite",
            "copysign",
        ]
    ),
}
REACHES_OUT = "which reaches files, processes or the network"


def hostile_operator(namespace: str, name: str) -> str | None:
    """``namespace::name`` if a model may not call it, else None."""
    operator = f"{namespace}::{name}"
    if namespace not in OPERATOR_NAMESPACES or operator in HOSTILE_OPERATORS:
        return operator
    return None


def hostile_class(qualified: str) -> str | None:
    """The torchbind class a qualified name refers to, if its namespace is not allowed."""
    match = re.search(r"(?:^|\.)torch\.classes\.(\w+)(?:\.(\w+))?", qualified)
    if match is None or match[1] in TORCHBIND_NAMESPACES:
        return None
    return f"torch.classes.{match[1]}" + (f".{match[2]}" if match[2] else "")


@dataclass(frozen=True)
class ArchiveInspection:
    """What ``inspect_archive`` found: the PyTorch format (None: another zip, or none) and,
    for a ``.pt2``, its inputs and outputs where its graph signature describes them."""

    format: WeightFormat | None
    signature: ModelSignature | None = None


def inspect_archive(
    path: str, allow_pickle: bool, limits: ArchiveLimits = ArchiveLimits()
) -> ArchiveInspection:
    """The PyTorch format of a zip upload, or None for another zip (or none), and a
    ``.pt2``'s signature; refuses (UnsupportedModel) a zip past ``limits``, a ``.pt2`` that
    unpickles its contents (unless ``allow_pickle``) or loads native code, and a TorchScript
    or ``.pt2`` graph that calls an operator outside the tensor namespaces or one that
    touches files. An AOTInductor package is recognised, not opened: whether one may come
    in is the use cases' rule (a conversion's variant only).

    Runs in the server's helper process, under its bounds, and loads nothing: a TorchScript
    archive that passes is then loaded in the cage (``check_torchscript_graphs``), since
    ``torch.jit.load`` runs the archive's ``__setstate__`` methods; its code is read as
    source first. A ``.pt2`` is never loaded: its JSON graph and configs say all.
    """
    with open(path, "rb") as file:
        if not zipfile.is_zipfile(file):
            return ArchiveInspection(None)
        entries = zip_entries(file, limits)
        found = pytorch_format([entry.filename for entry in entries])
        signature = None
        if found is WeightFormat.TORCHSCRIPT:
            with zipfile.ZipFile(file) as archive:
                check_torchscript_sources(archive, entries)
        elif found is WeightFormat.TORCH_EXPORT:
            with zipfile.ZipFile(file) as archive:
                signature = check_torch_export(archive, entries, allow_pickle, limits)
        elif found is WeightFormat.TORCH_PICKLE:
            with zipfile.ZipFile(file) as archive:
                if holds_weights_only(archive, entries):
                    raise UnsupportedModel(WEIGHTS_ONLY)
    return ArchiveInspection(found, signature)


WEIGHTS_ONLY = (
    "a torch.save file of weights only (a state_dict: tensors with no network), which no "
    "engine can run or convert; save the network itself and register that file: "
    "torch.export.save(torch.export.export(model, (example,)), 'model.pt2'), "
    "torch.jit.save(torch.jit.script(model), 'model.pt') or "
    "torch.onnx.export(model, (example,), 'model.onnx', external_data=False)"
)
# What a pickle of tensors alone imports: containers, tensors, storages and dtypes. A
# whole network also imports its classes (torch.nn.modules.…, or the user's own).
WEIGHT_MODULES = frozenset({"collections", "torch", "torch._utils", "torch.serialization"})


def holds_weights_only(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo]) -> bool:
    """Whether a torch.save archive's pickle holds tensors and containers only (read as
    opcodes: nothing is unpickled)."""
    for entry in entries:
        if entry.filename.endswith("/data.pkl"):
            try:
                imported = set(pickle_globals(read_member(archive, entry), entry.filename))
            except UnsupportedModel:
                return False  # a pickle we cannot read as opcodes: not for this message
            return all(name.split(" ")[0] in WEIGHT_MODULES for name in imported)
    return False


MEMBER_READ = 256 * MiB  # a code file or JSON config past this is no model's


def read_member(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    if entry.file_size > MEMBER_READ:
        raise UnsupportedModel(
            f"its member {trimmed(entry.filename, 100)!r} is over {MEMBER_READ // MiB} MiB"
        )
    try:
        return archive.read(entry)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, OSError) as error:
        raise UnsupportedModel(f"a damaged zip archive ({first_line(error)})") from None


def check_torchscript_sources(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo]) -> None:
    """Refuse TorchScript whose code names a hostile operator or torchbind class, in any
    method (``__setstate__``, run by the load, included) or in its pickled objects."""
    for entry in entries:
        if entry.filename.endswith(".py"):
            try:
                source = read_member(archive, entry).decode()
                tree = ast.parse(source)
            except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
                raise UnsupportedModel(
                    f"its TorchScript code {trimmed(entry.filename, 100)!r} does not parse"
                ) from None
            operator = hostile_name_in(tree)
            if operator is not None:
                raise UnsupportedModel(f"its TorchScript code calls {operator}, {REACHES_OUT}")
        elif entry.filename.endswith(".pkl"):
            for name in pickle_globals(read_member(archive, entry), entry.filename):
                found = hostile_class(name.replace(" ", "."))
                if found is not None:
                    raise UnsupportedModel(f"its pickled objects create {found}, {REACHES_OUT}")


def hostile_name_in(tree: ast.AST) -> str | None:
    """The first hostile operator (or class) TorchScript source refers to, by any path the
    TorchScript compiler resolves: ``torch.<op>`` (aten), ``ops.<namespace>.<op>``, a
    method of that name, ``getattr`` with its name, ``torch.classes.<namespace>``. Names
    are matched wherever they appear, whatever object they are looked up on: a false
    alarm on an attribute called ``save`` costs less than resolving TorchScript's types."""
    by_name = {operator.split("::")[1]: operator for operator in HOSTILE_OPERATORS}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
            chain = dotted(node)
            if chain is not None:
                found = hostile_chain(chain)
                if found is not None:
                    return found
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.append(node.value)
            found = hostile_class(node.value)
            if found is not None:
                return found
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.extend(alias.name.split("."))
                found = hostile_chain(alias.name.split("."))
                if found is not None:
                    return found
        for name in names:
            if name in by_name:
                return by_name[name]
    return None


def dotted(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None if it does not start at a name."""
    chain: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        chain.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    chain.append(current.id)
    return chain[::-1]


def hostile_chain(chain: list[str]) -> str | None:
    if chain[0] == "ops" and len(chain) >= 2:
        return hostile_operator(chain[1], chain[2] if len(chain) > 2 else "*")
    if chain[:2] == ["torch", "ops"] and len(chain) >= 3:
        return hostile_operator(chain[2], chain[3] if len(chain) > 3 else "*")
    return hostile_class(".".join(chain))


def pickle_globals(data: bytes, what: str) -> Iterator[str]:
    """The globals ("module name") a pickle imports; UnsupportedModel for an import not
    named in the stream (STACK_GLOBAL, the extension registry), which cannot be told."""
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                yield str(argument)
            elif opcode.name in ("STACK_GLOBAL", "EXT1", "EXT2", "EXT4"):
                raise UnsupportedModel(
                    f"its pickle {trimmed(what, 100)!r} imports a computed name "
                    f"({opcode.name}), which only full unpickling resolves"
                )
    except (ValueError, EOFError, struct.error, UnicodeDecodeError) as error:
        raise UnsupportedModel(f"its pickle {trimmed(what, 100)!r} is damaged ({error})") from None


def check_torchscript_graphs(path: str) -> None:
    """Load the (source-checked) TorchScript archive and refuse a hostile operator in any
    method's inlined graph: what the compiler resolved, beyond what the source says.
    Loading runs no ``forward``, but it runs the archive's ``__setstate__`` methods: the
    cage's work only (``caged.run_inspect``). It checks the archive compiles, as the
    worker needs."""
    import torch  # the profiling extra: in the cage, never the web process or its helpers

    try:
        module: Any = torch.jit.load(path, map_location="cpu")
    except MemoryError:
        raise
    except Exception as error:  # torch's RuntimeError, or its own bugs on a hostile file
        raise UnsupportedModel(
            f"torch cannot load it as TorchScript: {trimmed(first_line(error))}"
        ) from None
    for _, submodule in module.named_modules():
        for method in submodule._c._method_names():
            graph = submodule._c._get_method(method).graph.copy()
            torch._C._jit_pass_inline(graph)
            operator = hostile_in_graph(graph)
            if operator is not None:
                raise UnsupportedModel(
                    f"its TorchScript method {method} calls {operator}, {REACHES_OUT}"
                )


def hostile_in_graph(graph: Any) -> str | None:
    blocks = [graph]
    while blocks:
        for node in blocks.pop().nodes():
            namespace, _, name = node.kind().partition("::")
            found = hostile_operator(namespace, name)
            for value in node.outputs():
                found = found or hostile_class(str(value.type()))
            if found is not None:
                return found
            blocks.extend(node.blocks())
    return None


# Globals a tensor pickle (torch.save of tensors in tuples, lists and dicts) imports.
TENSOR_PICKLE_GLOBALS = re.compile(
    r"torch\._utils _rebuild_(tensor_v2|parameter)|collections OrderedDict"
    r"|torch (\w+Storage|device|Size|u?int\d+|float\d*|bfloat16|bool|complex\d+|half|double"
    r"|long|short|int)"
)


def check_torch_export(
    archive: zipfile.ZipFile,
    entries: list[zipfile.ZipInfo],
    allow_pickle: bool,
    limits: ArchiveLimits,
) -> ModelSignature | None:
    """Refuse a ``.pt2`` that ``torch.export.load`` would unpickle or load native code
    from (unless ``allow_pickle``: then the uploaders are trusted with both), and one
    whose graphs call an operator outside the allowed ones; the signature of the program
    ``torch.export.load`` loads (``model``), if it describes one."""
    root = entries[0].filename.split("/", 1)[0]  # torch reads members below the first's
    members = {}
    for entry in entries:
        if not entry.filename.startswith(root + "/"):
            raise UnsupportedModel(
                f"its member {trimmed(entry.filename, 100)!r} lies outside its root folder "
                f"{trimmed(root, 100)!r}"
            )
        members[entry.filename[len(root) + 1 :]] = entry
    models = [
        name[len("models/") : -len(".json")] for name in members if name.startswith("models/")
    ]
    if not allow_pickle:
        check_export_unpickles_nothing(archive, members, models, limits)
    signature = None
    for model in models:
        graph = read_json(archive, members, f"models/{model}.json")
        for target in export_targets(graph):
            operator = hostile_export_target(target)
            if operator is not None:
                raise UnsupportedModel(f"its graph calls {operator}, {REACHES_OUT}")
        if model == EXPORTED_MODEL:
            signature = export_signature(graph)
    return signature


EXPORTED_MODEL = "model"  # the program torch.export.save writes and torch.export.load reads
# torch/_export/serde/schema.py ScalarType: the element types a DataType names.
EXPORT_DTYPES = {
    1: DataType.TYPE_UINT8,
    2: DataType.TYPE_INT8,
    3: DataType.TYPE_INT16,
    4: DataType.TYPE_INT32,
    5: DataType.TYPE_INT64,
    6: DataType.TYPE_FP16,
    7: DataType.TYPE_FP32,
    8: DataType.TYPE_FP64,
    12: DataType.TYPE_BOOL,
    13: DataType.TYPE_BF16,
    28: DataType.TYPE_UINT16,
    34: DataType.TYPE_UINT32,
    35: DataType.TYPE_UINT64,
}


def export_signature(document: Any) -> ModelSignature | None:
    """The user inputs and outputs of a serialized ExportedProgram, from its graph
    signature and tensor metadata: a symbolic size is -1 (dynamic). Inputs keep the graph's
    names (the ``forward`` argument names); outputs, whose graph names are internal node
    names, are ``output`` (one) or ``output_0``, ``output_1``, ….

    None where the signature cannot be described as tensors (a non-tensor input or output,
    an element type no DataType names, a document of another schema): then nothing is
    filled in and the user's declaration stands."""
    try:
        module = document["graph_module"]
        signature = module["signature"]
        values = module["graph"]["tensor_values"]
        if any("constant_input" in spec for spec in signature["input_specs"]):
            return None  # a non-tensor argument the caller passes (an int, say)
        inputs = [
            spec["user_input"]["arg"] for spec in signature["input_specs"] if "user_input" in spec
        ]
        outputs = [
            spec["user_output"]["arg"]
            for spec in signature["output_specs"]
            if "user_output" in spec
        ]
        shaped_inputs = [
            export_io_shape(argument["as_tensor"]["name"], values[argument["as_tensor"]["name"]])
            for argument in inputs
        ]
        output_names = (
            ["output"]
            if len(outputs) == 1
            else [f"output_{index}" for index in range(len(outputs))]
        )
        shaped_outputs = [
            export_io_shape(name, values[argument["as_tensor"]["name"]])
            for name, argument in zip(output_names, outputs, strict=True)
        ]
    except (KeyError, TypeError, AttributeError):
        return None  # a non-tensor argument (as_int, as_none, …), or another schema
    if any(shape is None for shape in shaped_inputs + shaped_outputs):
        return None
    return ModelSignature(
        [shape for shape in shaped_inputs if shape is not None],
        [shape for shape in shaped_outputs if shape is not None],
    )


def export_io_shape(name: Any, meta: Any) -> IOShape | None:
    """One tensor of an ExportedProgram's signature; None if no IOShape describes it."""
    dtype = EXPORT_DTYPES.get(meta["dtype"])
    if dtype is None or not isinstance(name, str) or not name:
        return None
    shape = []
    for size in meta["sizes"]:
        if "as_int" in size and isinstance(size["as_int"], int):
            shape.append(size["as_int"])
        elif "as_expr" in size:
            shape.append(-1)  # a symbolic size: dynamic
        else:
            return None
    try:
        return IOShape(name=name, shape=shape, dtype=dtype)
    except ValueError:  # pydantic's ValidationError: a name or shape IOShape refuses
        return None


PICKLES_RUN_CODE = (
    "unpickling runs arbitrary code; this server refuses it unless started with "
    "--allow-pickle. Export without tensor subclasses or custom objects"
)


def check_export_unpickles_nothing(
    archive: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    models: list[str],
    limits: ArchiveLimits,
) -> None:
    if any(name.startswith("data/aotinductor/") for name in members):
        raise UnsupportedModel(
            "it holds AOTInductor compiled code, which loading runs as is; this server "
            "refuses it unless started with --allow-pickle"
        )
    for model in models:
        for legacy in (f"data/weights/{model}.pt", f"data/constants/{model}.pt"):
            if legacy in members:
                raise UnsupportedModel(f"its {legacy} is a pickle: {PICKLES_RUN_CODE}")
        for kind in ("weights", "constants"):
            name = f"data/{kind}/{model}_{kind}_config.json"
            if name not in members:
                continue  # torch.export.load refuses the archive before unpickling anything
            config = read_json(archive, members, name)
            payloads = config.get("config") if isinstance(config, dict) else None
            if not isinstance(payloads, dict) or not all(
                isinstance(meta, dict) for meta in payloads.values()
            ):
                raise UnsupportedModel(f"its {name} is no payload config")
            for fqn, meta in payloads.items():
                path_name = meta.get("path_name")
                # constants are loaded by their file's prefix: custom_obj_ and opaque_obj_
                # are unpickled whatever use_pickle says
                raw = kind == "weights" or (
                    isinstance(path_name, str) and path_name.startswith("tensor_")
                )
                if meta.get("use_pickle") is not False or not raw:
                    raise UnsupportedModel(
                        f"its {kind[:-1]} {trimmed(str(fqn), 100)!r} is pickled: {PICKLES_RUN_CODE}"
                    )
        inputs = members.get(f"data/sample_inputs/{model}.pt")
        if inputs is not None and inputs.file_size:
            check_tensor_pickle(read_member(archive, inputs), "its sample inputs", limits)


def check_tensor_pickle(data: bytes, what: str, limits: ArchiveLimits) -> None:
    """Refuse a torch.save file that imports more than tensors need: torch.export.load
    unpickles it fully when torch's restricted (weights-only) unpickler refuses it."""
    buffer = io.BytesIO(data)
    if not zipfile.is_zipfile(buffer):
        raise UnsupportedModel(f"{what} are a legacy pickle: {PICKLES_RUN_CODE}")
    entries = zip_entries(buffer, limits)
    with zipfile.ZipFile(buffer) as archive:
        for entry in entries:
            if not entry.filename.endswith(".pkl"):
                continue
            for name in pickle_globals(read_member(archive, entry), entry.filename):
                if not TENSOR_PICKLE_GLOBALS.fullmatch(name):
                    raise UnsupportedModel(
                        f"{what} are a pickle that calls {trimmed(name.replace(' ', '.'), 100)}: "
                        f"{PICKLES_RUN_CODE}"
                    )


def read_json(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str) -> Any:
    entry = members.get(name)
    if entry is None:
        raise UnsupportedModel(f"it has no {name}")
    try:
        return json.loads(read_member(archive, entry))
    except (ValueError, RecursionError):
        raise UnsupportedModel(f"its {name} is no JSON document") from None


def export_targets(document: Any) -> Iterator[str]:
    """Every operator a serialized ExportedProgram names: node targets and operator
    arguments, in subgraphs too."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ("target", "as_operator") and isinstance(value, str):
                    yield value
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def hostile_export_target(target: str) -> str | None:
    """What ``torch.export``'s deserializer would resolve ``target`` to, if a model may not
    call it. It resolves any ``torch.…``, ``_operator.…`` or ``math.…`` attribute path
    (``torch.load``, say), so only operator overloads and pure functions are allowed."""
    parts = target.split(".")
    if parts[:2] == ["torch", "ops"] and len(parts) in (4, 5):
        if parts[2] == "higher_order":
            return None if parts[3] in EXPORT_HIGHER_ORDER else f"higher_order::{parts[3]}"
        return hostile_operator(parts[2], parts[3])
    if len(parts) == 2 and parts[1] in EXPORT_PYTHON_OPERATORS.get(parts[0], ()):
        return None
    if len(parts) == 2 and parts[0] == "torch" and parts[1].startswith(("sym_", "_sym_")):
        return None
    return trimmed(target, 100)


def is_onnx(path: Path) -> bool:
    """Whether the file parses as an ONNX model the checker accepts (for telling a user
    who declared another engine what the file is)."""
    try:
        check_onnx(path)
    except UnsupportedModel:
        return False
    return True


def detect_format(path: Path) -> WeightFormat:
    found = archive_format(path)
    if found is not None:
        return found
    check_onnx(path)
    return WeightFormat.ONNX


def check_onnx(path: Path) -> onnx.ModelProto:
    """The ONNX model in ``path``, checked; UnsupportedModel says what is wrong."""
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except MemoryError:
        raise  # not the file's verdict: the caller's memory bound was reached
    except Exception as error:  # protobuf raises several types for garbage
        if starts_as_onnx(path):
            raise DamagedModel(
                f"it starts as an ONNX model but cannot be read to its end ({error}): it is "
                f"damaged, most likely cut short (it has {path.stat().st_size} bytes); upload "
                "the whole file"
            ) from None
        raise UnsupportedModel(f"not an ONNX model ({error})") from None
    if not model.graph.node:
        raise UnsupportedModel("not an ONNX model (no graph)")
    external = [
        tensor
        for tensor in tensors(model.graph)
        if tensor.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        # torch.onnx.export writes large weights beside the model by default; those files
        # are not uploaded with it (and neither onnxruntime nor the checker may read files
        # an upload names).
        locations = sorted(
            {
                entry.value
                for tensor in external
                for entry in tensor.external_data
                if entry.key == "location"
            }
        )
        named = ", ".join(repr(trimmed(name, 100)) for name in locations[:3]) or "unnamed"
        raise RefusedOnnx(
            f"its tensors refer to external data files ({named}), which are not "
            "uploaded with it; save the model as one file: "
            "onnx.save(onnx.load(path), path, save_as_external_data=False), or export it "
            "with torch.onnx.export(..., external_data=False)"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise RefusedOnnx(f"the ONNX checker rejects it: {first_line(error)}") from None
    return model


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "invalid"


@dataclass(frozen=True)
class ModelSignature:
    """A model's inputs and outputs as its file describes them."""

    inputs: list[IOShape]
    outputs: list[IOShape]


def onnx_signature(path: str, load_in_onnxruntime: bool) -> ModelSignature:
    """The checked model's inputs and outputs. Runs in a helper process of the server,
    under its bounds.

    Beyond ``check_onnx`` it refuses what can never run: a model onnxruntime (the engine
    that will profile it) cannot load, then one the checker's full check (strict shape
    and type inference) rejects. Each step reads the file afresh, so that no two copies
    of the model are held at once.
    """
    model = check_onnx(Path(path))
    graph = model.graph
    signature = ModelSignature(
        onnx_io_shapes(graph, graph.input), onnx_io_shapes(graph, graph.output)
    )
    del model, graph
    if load_in_onnxruntime:
        check_loads_in_onnxruntime(path)
    try:
        onnx.checker.check_model(path, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise UnsupportedModel(
            f"the ONNX checker's full check (strict shape inference) rejects it: "
            f"{trimmed(first_line(error))}"
        ) from None
    return signature


def tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The graph's initializers and constant tensors, those of its subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from tensors(subgraph)


# What onnxruntime puts before its reason: the error code, and the (staging) path.
ONNXRUNTIME_PREFIX = re.compile(
    r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .* failed: ?)?"
)


def check_loads_in_onnxruntime(path: str) -> None:
    """UnsupportedModel with onnxruntime's words unless it can build a CPU session of it."""
    import onnxruntime as ort  # the profiling extra; never imported by the web process

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    # Pre-packed copies of the weights speed up runs, not loading: a check needs 2.5 times
    # the file's size without them, 6 times with.
    options.add_session_config_entry("session.disable_prepacking", "1")
    options.log_severity_level = 3  # errors only: its warnings are not the user's concern
    try:
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except MemoryError:
        raise
    except Exception as error:  # onnxruntime's pybind exceptions share no useful base
        said = ONNXRUNTIME_PREFIX.sub("", " ".join(str(error).split()))
        if "bad_alloc" in said:  # onnxruntime reports a failed allocation as its own error
            raise MemoryError(said) from None
        raise UnsupportedModel(f"onnxruntime cannot load it: {trimmed(said)}") from None


def trimmed(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
