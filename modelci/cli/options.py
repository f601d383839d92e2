"""The options and arguments client commands share, and how their text is read: the hub
and token, ``--json``, a model named by id or alias, durations (``10ms``), input and
output shapes (``input:-1x3x224x224:FP32``), devices (``cpu``, ``cuda:1``) and metadata
given as ``NAME=VALUE`` (``--metric acc=0.91``, ``--tag team=vision``)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from modelci.client import DataType, DeviceKind, ModelHub, ModelInputFormat
from modelci.core.domain import MAX_METADATA_VALUE, METADATA_NAME, METADATA_NAME_RULE
from modelci.core.errors import NotFound

from .console import EXIT_CODES, fail

Server = Annotated[str, typer.Option(envvar="MODELCI_SERVER", help="The hub's URL.")]
Token = Annotated[str | None, typer.Option(envvar="MODELCI_TOKEN", help="API token.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"
ModelReference = Annotated[str, typer.Argument(help="The model's id, or an alias naming it.")]
MODEL_ID = re.compile(r"[0-9a-fA-F]{24}")


def model_named(hub: ModelHub, reference: str) -> Any:
    """The model ``reference`` names: by id, or by alias; what it is not, said."""
    if MODEL_ID.fullmatch(reference):  # an alias never reads as an id
        return hub.get_model(reference)
    try:
        return hub.get_model(alias=reference)
    except NotFound:
        raise fail(
            f"{reference!r} is neither a model id (24 hexadecimal digits) nor an alias",
            "`modelci ls` lists the models, `modelci alias ls` the aliases",
            EXIT_CODES[NotFound.code],
        ) from None


def model_id_of(hub: ModelHub, reference: str) -> str:
    """The id of the model ``reference`` names: an id as it is, or an alias."""
    if MODEL_ID.fullmatch(reference):
        return reference
    return str(model_named(hub, reference).id)


DURATION = re.compile(
    r"^(?P<value>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*"
    r"(?P<unit>h|min|m|s|ms|us|µs|ns)$"
)
DURATION_UNITS = {
    "h": 3600.0,
    "min": 60.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}


def parse_duration(text: str, option: str) -> float:
    """``10ms``, ``0.01s``, ``250us`` (or ``250µs``, ``5e-3s``), ``2m`` (or ``2min``),
    ``1h`` in seconds, as the API takes durations; a bare number is refused, since nobody
    can tell 10 of what."""
    found = DURATION.match(text.strip())
    if not found:
        raise typer.BadParameter(
            f"{text!r} is not a duration: a number and a unit, e.g. 10ms, 0.01s, 250us or "
            "2m (units: h, m or min, s, ms, us, ns)",
            param_hint=option,
        )
    seconds = float(found["value"]) * DURATION_UNITS[found["unit"]]
    if seconds <= 0:
        raise typer.BadParameter(f"{text!r}: give a duration above zero", param_hint=option)
    return seconds


IO_SPEC = re.compile(
    r"^(?P<name>[^:]+):(?P<shape>-?\d+(?:x-?\d+)*):(?P<dtype>\w+)(?::(?P<format>\w+))?$"
)
IO_SPEC_TEMPLATE = "NAME:SHAPE:DTYPE[:FORMAT], e.g. {example} (-1: any size; repeat)"
IO_SPEC_HELP = IO_SPEC_TEMPLATE.format(example="input:-1x3x224x224:FP32")
OUTPUT_SPEC_HELP = IO_SPEC_TEMPLATE.format(example="output:-1x1000:FP32")


def io_shape(spec: str, option: str) -> dict[str, Any]:
    """``input:-1x3x224x224:FP32[:NCHW]`` as an IOShapeInput; a clear error otherwise."""
    found = IO_SPEC.match(spec.strip())
    dtypes = ", ".join(dtype.value.removeprefix("TYPE_") for dtype in DataType)
    if not found:
        raise typer.BadParameter(
            f"{spec!r} is not NAME:SHAPE:DTYPE (e.g. input:-1x3x224x224:FP32); SHAPE is sizes "
            f"joined by 'x' with -1 for a dynamic size, DTYPE one of {dtypes}",
            param_hint=option,
        )
    shape = [int(size) for size in found["shape"].split("x")]
    if any(size == 0 or size < -1 for size in shape):
        raise typer.BadParameter(
            f"{spec!r}: sizes are positive, or -1 for a dynamic size", param_hint=option
        )
    dtype = found["dtype"].upper()
    dtype = dtype if dtype.startswith("TYPE_") else f"TYPE_{dtype}"
    if dtype not in DataType.__members__:
        raise typer.BadParameter(
            f"{spec!r}: unknown DTYPE {found['dtype']!r}; one of {dtypes}", param_hint=option
        )
    shape_input: dict[str, Any] = {"name": found["name"], "shape": shape, "dtype": dtype}
    if found["format"]:
        layout = found["format"].upper()
        layout = layout if layout.startswith("FORMAT_") else f"FORMAT_{layout}"
        if layout not in ModelInputFormat.__members__:
            formats = ", ".join(f.value.removeprefix("FORMAT_") for f in ModelInputFormat)
            raise typer.BadParameter(
                f"{spec!r}: unknown FORMAT {found['format']!r}; one of {formats}",
                param_hint=option,
            )
        shape_input["format"] = layout
    return shape_input


DEVICE_KINDS = {"cpu": DeviceKind.CPU, "cuda": DeviceKind.CUDA, "gpu": DeviceKind.CUDA}


def device_or_kind(device: str | None) -> dict[str, Any]:
    """``--device``: a kind (cpu; cuda or gpu, any GPU), or one device by id or name."""
    if device is None:
        return {}
    kind = DEVICE_KINDS.get(device.lower())
    return {"device_kind": kind} if kind else {"device": device}


# Free metadata on the command line: NAME=VALUE, repeated.
NAME_VALUE_HELP = "NAME=VALUE (repeat for each)"
Metrics = Annotated[
    list[str] | None,
    typer.Option("--metric", help=f"A metric, {NAME_VALUE_HELP}: acc=0.91, top5=0.97."),
]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", help=f"A training param, {NAME_VALUE_HELP}: lr=0.1."),
]
Tags = Annotated[
    list[str] | None, typer.Option("--tag", help=f"A tag, {NAME_VALUE_HELP}: team=vision.")
]
Description = Annotated[
    str | None, typer.Option(help="What the model is, in Markdown (or --description-file).")
]
DescriptionFile = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, help="A Markdown file to take the description from."),
]
SourceUri = Annotated[
    str | None,
    typer.Option("--source", help="The URI of the run, notebook or commit that produced it."),
]
RunId = Annotated[
    str | None,
    typer.Option("--run-id", help="The training run's id in its tracker (with --source)."),
]


def checked_name(name: str, spec: str, option: str) -> str:
    if not METADATA_NAME.fullmatch(name):
        raise typer.BadParameter(
            f"{spec!r}: the name {name!r} is not {METADATA_NAME_RULE}", param_hint=option
        )
    return name


def name_value(spec: str, option: str, example: str) -> tuple[str, str]:
    """``NAME=VALUE`` as (name, value), split at the first '='; a clear error otherwise."""
    name, equals, value = spec.partition("=")
    if not equals or not name.strip():
        raise typer.BadParameter(f"{spec!r} is not NAME=VALUE (e.g. {example})", param_hint=option)
    return checked_name(name.strip(), spec, option), value


def named_values(
    specs: list[str] | None, option: str, example: str, number: bool = False
) -> dict[str, Any] | None:
    """Repeated ``NAME=VALUE`` options as name → value (a finite number for a metric, the
    text as given otherwise); None when none was given. A name given twice is refused:
    which value was meant?"""
    if not specs:
        return None
    found: dict[str, Any] = {}
    for spec in specs:
        name, value = name_value(spec, option, example)
        if name in found:
            raise typer.BadParameter(f"{name!r} is given twice", param_hint=option)
        if number:
            try:
                measured = float(value)
            except ValueError:
                measured = math.nan
            if not math.isfinite(measured):
                raise typer.BadParameter(
                    f"{spec!r}: the value of {name} must be a finite number (e.g. {example})",
                    param_hint=option,
                )
            found[name] = measured
        elif len(value) > MAX_METADATA_VALUE:
            raise typer.BadParameter(
                f"the value of {name} is {len(value):,} characters; at most {MAX_METADATA_VALUE:,}",
                param_hint=option,
            )
        else:
            found[name] = value
    return found


def description_text(description: str | None, description_file: Path | None) -> str | None:
    """The description given, inline or from its file (UTF-8), or None."""
    if description is not None and description_file is not None:
        raise typer.BadParameter(
            "give the description inline or from a file, not both",
            param_hint="--description / --description-file",
        )
    if description_file is None:
        return description
    try:
        return description_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise typer.BadParameter(
            f"{description_file}: not UTF-8 text", param_hint="--description-file"
        ) from None
