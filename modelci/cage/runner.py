"""The cage: every load, conversion and run of an uploaded model happens in a child
process that sees only its input file (read-only) and a scratch folder.

With bubblewrap (Debian's ``bubblewrap``, what Flatpak runs applications in) the
child gets namespaces of its own: no network, its own process tree, an unprivileged
user, an empty environment (the worker's token stays outside), and a file system
holding only what Python needs to run (read-only), the input and the scratch folder.
Without bubblewrap a weaker cage is used and said so: the same child with an empty
environment, its own session, an unprivileged user when the worker runs as root, and
the same resource limits, but with the network and the host's files in reach.

Either way the child runs under limits on memory (address space), CPU time, file
size, open files and processes (under bubblewrap a seccomp filter also refuses it any
new process: threads only), its writable folders are bounded (sized tmpfs for
/tmp and /dev/shm, the rest of its root read-only, its scratch folder's usage
watched), and the worker ends it, with its whole process group, when its wall time
runs out, a limit is broken or its job is cancelled. It speaks JSON lines on stdout
(``program.py``); what it writes beyond ``MAX_OUTPUT_BYTES`` ends it. Each line is data
from an untrusted process: it is parsed into one of the ``Message`` models below
(bounded text, finite numbers, no unknown fields) or the step fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import resource
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from modelci.core.domain import ConversionCheck, Engine

logger = logging.getLogger("modelci.cage")

NOBODY = 65534
INPUT = "/job/input"
SCRATCH = "/job/scratch"
MAX_OUTPUT_BYTES = 16 * 1024 * 1024  # JSON lines from one step
POLL_S = 0.25
MiB = 1024**2
GiB = 1024**3

# The cage's memory-backed folders: tmpfs is host memory that no address-space limit
# counts, so each is sized and its size counted in the cage's share of memory.
TMP_BYTES = 512 * MiB
SHM_BYTES = 256 * MiB
TMPFS_BYTES = TMP_BYTES + SHM_BYTES

# How many cages one worker runs at once: one per lane (worker.LANES).
CAGES_PER_WORKER = 2
# What the host keeps beside the cages and the hub's check helper: the web process, the
# worker itself, the database, the page cache.
HOST_RESERVE_SHARE = 8  # one eighth of RAM
# The least a step is given (torch imported, a small model run): a smaller host gets
# this, and a warning that the cages may not fit its memory.
MIN_CAGE_MEMORY = 2 * GiB


class CageError(RuntimeError):
    """The caged step failed: it crashed, broke a limit, or reported an error."""


class CageStopped(CageError):
    """The step was ended from outside (cancelled, or its worker is stopping)."""


class CageMessageRefused(CageError):
    """The step sent a line that is not one of the messages it may send."""


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cage_memory_bytes(cages: int = CAGES_PER_WORKER, physical: int | None = None) -> int:
    """Each cage's address space, such that ``cages`` cages (with their tmpfs) and the
    hub's check helper fit this host's RAM together."""
    physical = physical_memory() if physical is None else physical
    # The hub's check helper caps itself at half the RAM, at least 4 GiB
    # (server.inspection's memory_cap); the worker usually runs beside that hub.
    helper = max(4 * GiB, physical // 2)
    spare = physical - helper - physical // HOST_RESERVE_SHARE
    share = spare // max(1, cages) - TMPFS_BYTES
    if share < MIN_CAGE_MEMORY:
        logger.warning(
            "this host's memory (%d MiB) leaves each of %d cages %d MiB; using %d MiB",
            physical // MiB,
            cages,
            max(share, 0) // MiB,
            MIN_CAGE_MEMORY // MiB,
        )
        return MIN_CAGE_MEMORY
    return share


def default_processes() -> int:
    # Threads count as processes: torch starts a pool of threads per core.
    return 128 + 4 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class Limits:
    wall_s: float = 1800.0
    cpu_s: int = 7200
    # Address space; None on CUDA (drivers map far more).
    memory_bytes: int | None = field(default_factory=cage_memory_bytes)
    file_bytes: int = 16 * GiB
    open_files: int = 1024
    # Processes and threads the step may run at once (RLIMIT_NPROC, set by the step).
    processes: int = field(default_factory=default_processes)
    # What the scratch folder may hold at once (checked every POLL_S).
    scratch_bytes: int = 32 * GiB
    # Whether the step may start processes (the seccomp filter left out): only a
    # conversion to AOTInductor, whose compile runs the host's C++ compiler. The
    # namespaces, the read-only root, RLIMIT_NPROC and the group's kill still hold.
    may_start_processes: bool = False


# What the cage may say: one line, one of these.
MAX_TEXT = 4096
MAX_LIST = 4096
MAX_FIGURES = 10_000  # values in one result
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Count = Annotated[int, Field(ge=0, le=2**31)]
Seconds = Annotated[float, Field(ge=0, le=10**7)]


def bounded_figures(value: Any) -> Any:
    """A result's JSON: finite numbers, bounded text, at most MAX_FIGURES values."""
    seen = 0
    pending = [value]
    while pending:
        item = pending.pop()
        seen += 1
        if seen > MAX_FIGURES:
            raise ValueError(f"more than {MAX_FIGURES} values")
        if isinstance(item, dict):
            if any(not isinstance(key, str) or len(key) > 256 for key in item):
                raise ValueError("a key that is not a short string")
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("a number that is not finite")
        elif isinstance(item, str) and len(item) > MAX_TEXT:
            raise ValueError(f"a text over {MAX_TEXT} characters")
        elif item is not None and not isinstance(item, (bool, int, float, str)):
            raise ValueError("a value that is not JSON")
    return value


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LogMessage(Message):
    type: Literal["log"]
    message: Text


class ErrorMessage(Message):
    type: Literal["error"]
    permanent: bool
    message: Text


class StaticMessage(Message):
    type: Literal["static"]
    result: dict[str, Any]


class VariantMessage(Message):
    type: Literal["variant"]
    engine: Engine
    # A file's name in the step's scratch folder; worker.py checks what it names.
    file: Annotated[str, Field(min_length=1, max_length=255)]
    check: ConversionCheck


class NotProducedMessage(Message):
    type: Literal["not_produced"]
    engine: Engine
    reason: Text
    skipped: bool


class PlanMessage(Message):
    type: Literal["plan"]
    batches: Annotated[list[Count], Field(max_length=MAX_LIST)]
    adaptive: bool
    budget_s: Seconds | None
    max_p99_latency_s: Seconds | None


class SweepStopMessage(Message):
    reason_code: Annotated[str, Field(max_length=64)]
    reason: Text


class DynamicMessage(Message):
    type: Literal["dynamic"]
    batch: Count
    result: dict[str, Any]
    sweep_stop: SweepStopMessage | None


class SweepEndMessage(Message):
    type: Literal["sweep_end"]
    batch: Count | None
    last_batch: Count | None
    batches: Annotated[list[Count], Field(max_length=MAX_LIST)]
    stable: Annotated[list[bool], Field(max_length=MAX_LIST)]
    elapsed_s: Seconds
    budget_s: Seconds | None
    reason_code: Annotated[str, Field(max_length=64)]
    reason: Text


AnyMessage = Annotated[
    LogMessage
    | ErrorMessage
    | StaticMessage
    | VariantMessage
    | NotProducedMessage
    | PlanMessage
    | DynamicMessage
    | SweepEndMessage,
    Field(discriminator="type"),
]
MESSAGE: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


def parsed_message(line: bytes) -> dict[str, Any]:
    """One line from the cage as a checked message (its fields as JSON), or
    CageMessageRefused saying what is wrong with it, never echoing what it said."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        raise CageMessageRefused("the step sent a line that is not JSON") from None
    try:
        message = MESSAGE.validate_python(value)
        # A result's shape is the hub's input type's to check; its size is checked here.
        if isinstance(message, StaticMessage | DynamicMessage):
            bounded_figures(message.result)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'][:3]) or 'message'}: "
            f"{problem['msg'][:120]}"
            for problem in error.errors(include_input=False)[:3]
        )
        raise CageMessageRefused(f"the step sent a malformed message ({problems})") from None
    except ValueError as error:
        raise CageMessageRefused(f"the step sent a malformed result ({error})") from None
    checked: dict[str, Any] = message.model_dump(mode="json")
    return checked


@cache
def bubblewrap() -> str | None:
    """The bwrap binary, if it is installed and can make namespaces here."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = subprocess.run(
        [
            path,
            *("--ro-bind", "/", "/", "--unshare-all", "--unshare-user", "--uid", str(NOBODY)),
            *("--gid", str(NOBODY), "--die-with-parent", "true"),
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        logger.warning(
            "bubblewrap cannot make namespaces here (%s): using the weaker cage",
            probe.stderr.decode(errors="replace").strip()[:200],
        )
        return None
    return path


def cage_kind() -> str:
    """Which cage runs uploaded models here, in words (for /readyz and device reports)."""
    if bubblewrap() is not None:
        return "bubblewrap: no network, own namespaces, unprivileged, only its input visible"
    return "rlimits only (install bubblewrap): resource limits and an empty environment"


def python_paths() -> list[Path]:
    """What the interpreter and this package need, read-only, inside the cage: the
    interpreter, its venv marker and shared library, the library folders of its
    prefixes (the standard library and site-packages) and this package's folders.
    Never sys.path as such: PYTHONPATH can name any folder (the caged Python runs
    with -I and does not read it)."""
    paths = {Path(sys.executable)}
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for prefix in prefixes:
        paths.add(Path(prefix) / "pyvenv.cfg")
        scheme = sysconfig.get_paths(vars={"base": prefix, "platbase": prefix})
        paths |= {Path(scheme[name]) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    library = sysconfig.get_config_var("LDLIBRARY")
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and library and libdir:
        paths.add(Path(libdir) / library)
    spec = importlib.util.find_spec("modelci")
    if spec is not None and spec.submodule_search_locations:
        paths |= {Path(location) for location in spec.submodule_search_locations}
    # The interpreter by the path it is run as, and every file its links lead to.
    for link in list(paths):
        while link.is_symlink():
            link = (link.parent / os.readlink(link)).absolute()
            paths.add(link)
    existing = {Path(os.path.abspath(path)) for path in paths if path.exists()}
    # Only the outermost of nested paths, and never the whole root.
    kept = sorted(existing, key=lambda path: len(path.parts))
    outer: list[Path] = []
    for path in kept:
        if path != Path("/") and not any(path.is_relative_to(other) for other in outer):
            outer.append(path)
    return outer


SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache")
SYSTEM_INFO = ("/sys/devices/system/cpu", "/sys/fs/cgroup")


# A seccomp filter (classic BPF) for the caged program: threads, but no new process.
# RLIMIT_NPROC counts processes per host user, and exempts root: when the worker runs
# as root, bubblewrap's nobody is the host's root and the limit alone would not hold.
BPF_LD_ABS, BPF_JEQ, BPF_JGE, BPF_JSET, BPF_RET = 0x20, 0x15, 0x35, 0x45, 0x06
SECCOMP_ALLOW = 0x7FFF0000
SECCOMP_ERRNO = 0x00050000
CLONE_THREAD = 0x00010000
EAGAIN, ENOSYS = 11, 38
# architecture (AUDIT_ARCH_*): fork, vfork, clone, clone3 (None: no such call there)
SYSCALLS = {
    "x86_64": (0xC000003E, 57, 58, 56, 435),
    "aarch64": (0xC00000B7, None, None, 220, 435),
}


def no_new_processes() -> bytes | None:
    """The filter's program: clone only with CLONE_THREAD (a thread), fork and vfork
    refused (EAGAIN, as a process limit would), clone3 refused as unknown (ENOSYS:
    the C library falls back to clone), any other architecture's calls refused; None
    on a machine it does not know."""
    machine = os.uname().machine
    if machine not in SYSCALLS:
        return None
    arch, fork, vfork, clone, clone3 = SYSCALLS[machine]
    refuse, unknown, allow = SECCOMP_ERRNO | EAGAIN, SECCOMP_ERRNO | ENOSYS, SECCOMP_ALLOW
    # (code, jump if true, jump if false, value); jumps count the instructions skipped.
    program: list[tuple[int, int, int, int]] = [
        (BPF_LD_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ, 1, 0, arch),
        (BPF_RET, 0, 0, unknown),
        (BPF_LD_ABS, 0, 0, 0),  # seccomp_data.nr
        (BPF_JGE, 0, 1, 0x40000000),  # x32 calls on x86_64
        (BPF_RET, 0, 0, unknown),
    ]
    for number, answer in ((fork, refuse), (vfork, refuse), (clone3, unknown)):
        if number is not None:
            program += [(BPF_JEQ, 0, 1, number), (BPF_RET, 0, 0, answer)]
    program += [
        (BPF_JEQ, 1, 0, clone),
        (BPF_RET, 0, 0, allow),
        (BPF_LD_ABS, 0, 0, 16),  # the low half of seccomp_data.args[0]: clone's flags
        (BPF_JSET, 0, 1, CLONE_THREAD),
        (BPF_RET, 0, 0, allow),
        (BPF_RET, 0, 0, refuse),
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def bubblewrap_command(
    bwrap: str, input_file: Path, scratch: Path, cuda: bool, seccomp_fd: int | None
) -> list[str]:
    command = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(NOBODY)]
    command += ["--gid", str(NOBODY), "--die-with-parent", "--new-session", "--clearenv"]
    command += ["--proc", "/proc", "--dev", "/dev"]
    command += ["--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    command += ["--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    for system_path in (*SYSTEM_PATHS, *SYSTEM_INFO):
        command += ["--ro-bind-try", system_path, system_path]
    for python_path in python_paths():
        command += ["--ro-bind", str(python_path), str(python_path)]
    if cuda:  # the GPU's device files; the driver's libraries are under /usr
        for device in sorted(Path("/dev").glob("nvidia*")):
            command += ["--dev-bind", str(device), str(device)]
    command += ["--ro-bind", str(input_file), INPUT, "--bind", str(scratch), SCRATCH]
    # Everything else it could write is memory that no limit counts: read-only.
    command += ["--remount-ro", "/dev", "--remount-ro", "/"]
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    command += ["--chdir", SCRATCH]
    return command


def limit_resources(limits: Limits, drop_to_nobody: bool) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec
        os.setsid()  # its own process group: killed whole
        if limits.memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop_to_nobody:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return apply


def caged_command(
    program_module: str, input_file: Path, scratch: Path, cuda: bool, seccomp_fd: int | None
) -> tuple[list[str], dict[str, str], bool]:
    """The command, its environment, and whether the child drops to nobody itself."""
    program = [sys.executable, "-I", "-m", program_module]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": SCRATCH,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
    }
    env = {name: value for name, value in env.items() if value}
    bwrap = bubblewrap()
    if bwrap is not None:
        return (
            bubblewrap_command(bwrap, input_file, scratch, cuda, seccomp_fd) + program,
            env,
            False,
        )
    # The weaker cage: same files at their own paths, given to nobody when we are root.
    env["HOME"] = str(scratch)
    if os.geteuid() == 0:
        os.chown(scratch, NOBODY, NOBODY)
        input_file.chmod(0o644)
    return program, env, os.geteuid() == 0


@contextlib.contextmanager
def seccomp_program(limits: Limits) -> Iterator[int | None]:
    """A descriptor holding the filter's program, for bubblewrap's --seccomp (None: no
    filter, without bubblewrap or for a step that may start processes)."""
    filtered = bubblewrap() is not None and not limits.may_start_processes
    program = no_new_processes() if filtered else None
    if program is None:
        yield None
        return
    descriptor = os.memfd_create("modelci-cage-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, program)
        os.lseek(descriptor, 0, os.SEEK_SET)
        yield descriptor
    finally:
        os.close(descriptor)


def scratch_usage(scratch: Path, most: int) -> int:
    """Bytes the scratch folder holds (blocks allocated and sizes, the larger), counting
    up to a little past ``most``."""
    used = 0
    pending = [scratch]
    while pending and used <= most:
        with contextlib.suppress(OSError), os.scandir(pending.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    status = entry.stat(follow_symlinks=False)
                    used += max(status.st_blocks * 512, status.st_size, 4096)
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
    return used


def run_caged(
    program: str,
    request: dict[str, Any],
    input_file: Path,
    scratch: Path,
    limits: Limits,
    should_stop: Callable[[], bool],
    cuda: bool = False,
) -> Iterator[dict[str, Any]]:
    """Run one step of ``program`` (a steps module, see ``program.py``) in the cage: the
    messages it sends, as they come, each checked
    (``parsed_message``: CageMessageRefused ends the step at the first that is not one).

    ``request`` reaches the child on stdin; paths in it are the cage's (``INPUT``,
    ``SCRATCH``; in the weaker cage the same names are mapped to the real paths).
    """
    if bubblewrap() is None:
        request = {**request, "input": str(input_file), "scratch": str(scratch)}
    else:
        request = {**request, "input": INPUT, "scratch": SCRATCH}
    with seccomp_program(limits) as seccomp_fd:
        command, env, drop = caged_command(program, input_file, scratch, cuda, seccomp_fd)
        # RLIMIT_NPROC counts a host user's processes and threads, all of them: set by
        # the step itself inside bubblewrap's user namespace, it counts the cage's own
        # (set before, it would count all of the worker's user's too). Without
        # bubblewrap it is set only for nobody. It spares root: a root worker's
        # bubblewrap nobody is the host's root, hence the seccomp filter as well.
        if bubblewrap() is not None or drop:
            request = {**request, "processes": limits.processes}
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=scratch,
            pass_fds=() if seccomp_fd is None else (seccomp_fd,),
            preexec_fn=limit_resources(limits, drop),
        )
    assert process.stdin and process.stdout and process.stderr
    process.stdin.write(json.dumps(request).encode())
    process.stdin.close()
    deadline = time.monotonic() + limits.wall_s
    received = 0
    stderr_tail = b""
    pending = b""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, "out")
    selector.register(process.stderr, selectors.EVENT_READ, "err")
    try:
        open_streams = 2
        while open_streams:
            if should_stop():
                raise CageStopped("stopped")
            if time.monotonic() > deadline:
                raise CageError(f"the step ran out of its wall time ({limits.wall_s:.0f} s)")
            if scratch_usage(scratch, limits.scratch_bytes) > limits.scratch_bytes:
                raise CageError(
                    f"the step wrote more than {limits.scratch_bytes} bytes to its scratch folder"
                )
            for key, _ in selector.select(POLL_S):
                chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                if not chunk:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "err":
                    stderr_tail = (stderr_tail + chunk)[-4096:]
                    continue
                received += len(chunk)
                if received > MAX_OUTPUT_BYTES:
                    raise CageError(f"the step wrote more than {MAX_OUTPUT_BYTES} bytes")
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield parsed_message(line)
        code = process.wait()
    finally:
        selector.close()
        if process.poll() is None:
            kill_group(process)
    if code != 0:
        raise CageError(died_because(code, limits, stderr_tail))


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def died_because(code: int, limits: Limits, stderr_tail: bytes) -> str:
    last = stderr_tail.decode(errors="replace").strip().splitlines()[-1:] or [""]
    if code < 0:
        name = signal.Signals(-code).name
        if -code == signal.SIGXCPU:
            return f"the step used up its CPU time ({limits.cpu_s} s) and was killed"
        if -code == signal.SIGXFSZ:
            return f"the step wrote a file over {limits.file_bytes} bytes and was killed"
        return f"the step was killed by {name} ({last[0][:300]})"
    if "MemoryError" in last[0] or "bad_alloc" in last[0]:
        return f"the step ran out of its memory ({limits.memory_bytes} bytes): {last[0][:300]}"
    return f"the step exited with status {code}: {last[0][:300]}"
