"""Let a fresh environment use packages of the Python that holds torch, without copying.

Run by that Python (the one whose packages are lent):

    python3 deploy/gpu/beside.py view SITE ROOT...         # before the offline install
    python3 deploy/gpu/beside.py materialize SITE ROOT...  # after it, for bubblewrap

``view``: the installed distributions ROOT... (torch, numpy, …) and everything they
require there, markers evaluated, become visible to the environment whose site-packages
is SITE: symbolic links to their files in a folder beside SITE, named by a ``.pth``
file. pip sees them as installed and never uninstalls them (they are outside its
environment); where the hub needs a newer version it installs one into SITE, which
comes first on sys.path.

``materialize``: the cage under bubblewrap binds only the environment's own folders, so
a link that leads elsewhere would be a missing package there. Each lent distribution
that the environment does not have itself is hard-linked into SITE (copied where the
two are on different file systems) and the ``.pth`` file removed.

Prints what it lent, one distribution a line.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip's own copy, in an environment without packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]

PTH = "_modelci_beside.pth"
VIEW = "modelci-beside"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``roots`` and what they require, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    pending = [canonical(root) for root in roots]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not here: the wheels folder must have it, or the install says so
        found[name] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonical(requirement.name))
    return found


def top_level(dist: metadata.Distribution) -> set[Path]:
    """The entries a distribution has directly in its site-packages: its packages and
    modules and its .dist-info folder (never a shared __pycache__, a .pth or a script)."""
    entries: set[Path] = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith(".pth"):
            continue
        entries.add(Path(str(dist.locate_file(first))))
    return {entry for entry in entries if entry.exists()}


def view(site: Path, lent: dict[str, metadata.Distribution]) -> None:
    folder = site.parent / VIEW
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for dist in lent.values():
        for entry in top_level(dist):
            link = folder / entry.name
            if not link.exists():  # a namespace folder (nvidia/) shared by several
                link.symlink_to(entry)
    (site / PTH).write_text(f"{folder}\n")


def own_distributions(site: Path) -> set[str]:
    return {
        canonical(entry.name.split("-")[0])
        for entry in site.iterdir()
        if entry.name.endswith(".dist-info")
    }


def materialize(site: Path, lent: dict[str, metadata.Distribution]) -> None:
    own = own_distributions(site)
    for name, dist in lent.items():
        if name in own:
            continue  # pip installed the environment's own version
        for entry in top_level(dist):
            linked = subprocess.run(
                ["cp", "-al", str(entry), str(site)], capture_output=True, check=False
            )
            if linked.returncode != 0:  # another file system: copied
                subprocess.run(["cp", "-a", str(entry), str(site)], check=True)
    (site / PTH).unlink(missing_ok=True)
    shutil.rmtree(site.parent / VIEW, ignore_errors=True)


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[1] not in ("view", "materialize"):
        sys.exit(__doc__)
    site, roots = Path(sys.argv[2]), sys.argv[3:]
    lent = closure(roots)
    missing = [root for root in roots if canonical(root) not in lent]
    (view if sys.argv[1] == "view" else materialize)(site, lent)
    for name, dist in sorted(lent.items()):
        print(f"{name} {dist.version}")
    if missing:
        print(f"not installed beside torch: {', '.join(missing)}", file=sys.stderr)
    os.sync()


if __name__ == "__main__":
    main()
