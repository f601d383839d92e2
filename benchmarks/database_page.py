"""What the embedded database itself spends on a page of 100 models, and on what.

The hub is started and seeded as `read_path.py` does (`benchmarks/hub.py`; --models
models, half in one architecture, each with a static and two dynamic results); then
PyMongo reads straight from its embedded database, one request at a time, variants of
the page query `models(architecture:, first: 100)` sends (filter, `_id` descending,
limit 101), each --requests times in --rounds alternating rounds:

- the page as the hub reads it;
- the same without the sort (the database's own sort of the matches left out);
- the same sorted, but 10 documents instead of 101 (less to encode and send);
- the same sorted, `_id` only (projection);
- one model by id (what `model(id:)` reads).

    python benchmarks/database_page.py [--models 300] [--requests 20] [--rounds 3]

Printed: a Markdown table of each variant's p50 over the rounds' p50s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bson.raw_bson import RawBSONDocument
from pymongo import DESCENDING, MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub import serve, wait_until_up
from mlflow_registry import ARCHITECTURES, Ours

from modelci.server.embedded import free_port, running_database_url
from modelci.server.settings import Settings

PAGE = 100


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        hub = serve(Path(folder), port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url)
            ours = Ours(url)
            ours.seed(args.models, 2)
            settings = Settings(data_dir=Path(folder))
            database_url = running_database_url(settings.embedded_db_dir)
            assert database_url is not None, "the hub's embedded database is not running"
            with MongoClient(database_url, document_class=RawBSONDocument) as client:
                models = client[settings.database].models
                where = {"architecture": ARCHITECTURES[0]}
                newest = models.find_one(where, sort=[("_id", DESCENDING)])
                assert newest is not None
                reads: dict[str, Callable[[], object]] = {
                    "page: sorted, 101 documents": lambda: list(
                        models.find(where).sort("_id", DESCENDING).limit(PAGE + 1)
                    ),
                    "page unsorted, 101 documents": lambda: list(
                        models.find(where).limit(PAGE + 1)
                    ),
                    "page sorted, 10 documents": lambda: list(
                        models.find(where).sort("_id", DESCENDING).limit(10)
                    ),
                    "page sorted, `_id` only": lambda: list(
                        models.find(where, {"_id": 1}).sort("_id", DESCENDING).limit(PAGE + 1)
                    ),
                    "one model by id": lambda: models.find_one({"_id": newest["_id"]}),
                }
                p50s: dict[str, list[float]] = {name: [] for name in reads}
                for _ in range(args.rounds):
                    for name, read in reads.items():
                        timings = []
                        for _ in range(args.requests):
                            started = time.perf_counter()
                            read()
                            timings.append(time.perf_counter() - started)
                        p50s[name].append(statistics.median(timings))
        finally:
            hub.terminate()
            hub.wait()

    matches = args.models // 2
    print(f"\n| read ({matches} of {args.models} models match) | p50 (ms) |")
    print("|---|---|")
    for name, values in p50s.items():
        print(f"| {name} | {statistics.median(values) * 1e3:.1f} |")
    print(f"\nMedians of {args.rounds} rounds of {args.requests} requests a read.")


if __name__ == "__main__":
    main()
