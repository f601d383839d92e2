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
size and open files, and the worker ends it, with its whole process group, when
its wall time runs out or its job is cancelled. It speaks JSON lines on stdout
(``caged.py``); what it writes beyond ``MAX_OUTPUT_BYTES`` ends it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

logger = logging.getLogger("modelci.cage")

NOBODY = 65534
INPUT = "/job/input"
SCRATCH = "/job/scratch"
MAX_OUTPUT_BYTES = 16 * 1024 * 1024  # JSON lines from one step
POLL_S = 0.25
GiB = 1024**3


class CageError(RuntimeError):
    """The caged step failed: it crashed, broke a limit, or reported an error."""


class CageStopped(CageError):
    """The step was ended from outside (cancelled, or its worker is stopping)."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 1800.0
    cpu_s: int = 7200
    memory_bytes: int | None = 16 * GiB  # address space; None on CUDA (drivers map far more)
    file_bytes: int = 16 * GiB
    open_files: int = 1024


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
    """What the interpreter and this package need, read-only, inside the cage."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    paths |= {Path(entry) for entry in sys.path if entry and Path(entry).is_dir()}
    for package in ("modelci", "modelci.schema", "modelci.profiling"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            paths |= {Path(location) for location in spec.submodule_search_locations}
    existing = {path.resolve() for path in paths if path.exists()}
    # Only the outermost of nested paths, and never the whole root.
    kept = sorted(existing, key=lambda path: len(path.parts))
    outer: list[Path] = []
    for path in kept:
        if path != Path("/") and not any(path.is_relative_to(other) for other in outer):
            outer.append(path)
    return outer


SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache")
SYSTEM_INFO = ("/sys/devices/system/cpu", "/sys/fs/cgroup")


def bubblewrap_command(bwrap: str, input_file: Path, scratch: Path, cuda: bool) -> list[str]:
    command = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(NOBODY)]
    command += ["--gid", str(NOBODY), "--die-with-parent", "--new-session", "--clearenv"]
    command += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for system_path in (*SYSTEM_PATHS, *SYSTEM_INFO):
        command += ["--ro-bind-try", system_path, system_path]
    for python_path in python_paths():
        command += ["--ro-bind", str(python_path), str(python_path)]
    if cuda:  # the GPU's device files; the driver's libraries are under /usr
        for device in sorted(Path("/dev").glob("nvidia*")):
            command += ["--dev-bind", str(device), str(device)]
    command += ["--ro-bind", str(input_file), INPUT, "--bind", str(scratch), SCRATCH]
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
    input_file: Path, scratch: Path, cuda: bool
) -> tuple[list[str], dict[str, str], bool]:
    """The command, its environment, and whether the child drops to nobody itself."""
    program = [sys.executable, "-I", "-m", "modelci.profiling.caged"]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": SCRATCH,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
    }
    env = {name: value for name, value in env.items() if value}
    bwrap = bubblewrap()
    if bwrap is not None:
        return bubblewrap_command(bwrap, input_file, scratch, cuda) + program, env, False
    # The weaker cage: same files at their own paths, given to nobody when we are root.
    env["HOME"] = str(scratch)
    if os.geteuid() == 0:
        os.chown(scratch, NOBODY, NOBODY)
        input_file.chmod(0o644)
    return program, env, os.geteuid() == 0


def run_caged(
    request: dict[str, Any],
    input_file: Path,
    scratch: Path,
    limits: Limits,
    should_stop: Callable[[], bool],
    cuda: bool = False,
) -> Iterator[dict[str, Any]]:
    """Run one step in the cage: the messages it sends, as they come.

    ``request`` reaches the child on stdin; paths in it are the cage's (``INPUT``,
    ``SCRATCH``; in the weaker cage the same names are mapped to the real paths).
    """
    command, env, drop = caged_command(input_file, scratch, cuda)
    if bubblewrap() is None:
        request = {**request, "input": str(input_file), "scratch": str(scratch)}
    else:
        request = {**request, "input": INPUT, "scratch": SCRATCH}
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=scratch,
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
                        yield json.loads(line)
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
