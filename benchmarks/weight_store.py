"""Weight store choice: files under the data dir versus GridFS, against a plain file copy.

Each round uploads one weight through the GraphQL API (multipart, in-process ASGI),
downloads it over GET /models/{id}/weight, and copies the same file with
shutil.copyfile on the same disk as the reference. Prints MB/s medians and ratios.

    python benchmarks/weight_store.py [--mb 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from pymongo import MongoClient

from modelci.server.app import create_app
from modelci.server.embedded import EmbeddedDatabase
from modelci.server.settings import Settings

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from conftest import PREFLIGHT, REGISTER, model_input, multipart


async def upload_and_download(settings: Settings, url: str, weight: bytes, version: int) -> tuple:
    app = create_app(settings, mongodb_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            request = multipart(
                REGISTER, {"input": model_input(version=version)}, {"weight": ("w.bin", weight)}
            )
            started = time.perf_counter()
            response = await http.post("/graphql", headers=PREFLIGHT, **request)
            upload_s = time.perf_counter() - started
            model_id = response.json()["data"]["registerModel"]["id"]
            started = time.perf_counter()
            size = 0
            async with http.stream("GET", f"/models/{model_id}/weight") as download:
                async for chunk in download.aiter_bytes():
                    size += len(chunk)
            download_s = time.perf_counter() - started
            assert size == len(weight)
    return upload_s, download_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    weight = os.urandom(args.mb * 1024 * 1024)
    mb = len(weight) / 1e6

    with tempfile.TemporaryDirectory() as tmp, EmbeddedDatabase(Path(tmp) / "db") as database:
        source = Path(tmp) / "source.bin"
        source.write_bytes(weight)
        timings: dict[str, list[float]] = {}
        for round_ in range(args.rounds):
            started = time.perf_counter()
            shutil.copyfile(source, Path(tmp) / "copy.bin")
            timings.setdefault("cp", []).append(time.perf_counter() - started)
            for store in ("files", "gridfs"):
                settings = Settings(
                    database=f"bench_{uuid.uuid4().hex[:8]}",
                    data_dir=Path(tmp) / store,
                    weight_store=store,  # type: ignore[arg-type]
                    workers=0,
                    _env_file=None,  # type: ignore[call-arg]
                )
                up, down = asyncio.run(
                    upload_and_download(settings, database.url, weight, round_ + 1)
                )
                timings.setdefault(f"{store} upload", []).append(up)
                timings.setdefault(f"{store} download", []).append(down)
                with MongoClient(database.url) as client:
                    client.drop_database(settings.database)

    rate = {name: mb / statistics.median(values) for name, values in timings.items()}
    for name, value in rate.items():
        print(f"{name:>16}: {value:8.1f} MB/s (median of {args.rounds})")
    print(
        f"ratios ({args.mb} MB): "
        f"files upload/cp {rate['files upload'] / rate['cp']:.2f}, "
        f"gridfs upload/cp {rate['gridfs upload'] / rate['cp']:.2f}, "
        f"gridfs/files upload {rate['gridfs upload'] / rate['files upload']:.2f}, "
        f"gridfs/files download {rate['gridfs download'] / rate['files download']:.2f}"
    )


if __name__ == "__main__":
    main()
