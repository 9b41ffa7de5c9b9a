"""Write-path benchmark: prediction + audit writes per second with and without group commit.

Run from the project root in .venv::

    python benchmarks/group_commit.py                          # SQLite, synchronous NORMAL and FULL
    python benchmarks/group_commit.py --postgres URL           # also a PostgreSQL server

``--threads`` threads (default 8, as the service benchmark's clients) each store ``--writes``
predictions (one prediction and its audit line per call, the answer awaited as a request would),
through the service's group committer (shared transactions), then through ``ServiceState.store``
with group commit off (a transaction each), alternating ``--rounds`` times on the same database.
The service itself uses group commit on SQLite only; the PostgreSQL figures show why. No HTTP
and no model: this is the database part of a prediction alone; ``benchmarks/serve.py`` measures
the whole request.

Progress goes to stderr; the last line of stdout is one JSON object
``{"results": [{"database", "group_commit", "writes_per_second", "transactions"}, ...]}``
(``transactions``: the shared transactions of a round)
with the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from medsight.serve import ServeSettings
from medsight.serve.app import create_app
from medsight.store.database import open_database
from medsight.store.records import PredictionEntry, record_predictions
from medsight.store.settings import StoreSettings
from medsight.store.users import create_user, get_user, local_cli_user

ENTRY = PredictionEntry(
    task="bench",
    input_bytes=b'{"row": {"radius_mean": 14.1}}' * 10,
    label="benign",
    probability=0.2,
    output={"classes": ["benign", "malignant"], "probabilities": [0.8, 0.2]},
    input_type="application/json",
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def writes_per_second(store: StoreSettings, group_commit: bool, threads: int, writes: int) -> dict:
    """One timed round: ``threads`` x ``writes`` stored predictions through ``ServiceState``."""
    app = create_app(ServeSettings(store=store, group_commit=group_commit))
    state = app.state.medsight
    with state.read() as session:
        user = get_user(session, "bench-clinician")
    assert user is not None

    # the committer itself, also where the service would not use it (PostgreSQL)
    store_one = state._group_commit.submit if group_commit else state.store

    def client() -> None:
        for _ in range(writes):
            store_one(lambda s: record_predictions(s, user, [ENTRY], source="bench")).result()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    begin = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - begin
    shared = state._group_commit.transactions
    state.close()
    state.database.dispose()
    return {"writes_per_second": threads * writes / elapsed, "transactions": shared}


def prepare(store: StoreSettings) -> None:
    database = open_database(store)
    try:
        with database.transaction() as session:
            if get_user(session, "bench-clinician") is None:
                admin = local_cli_user(session)
                create_user(
                    session,
                    "bench-clinician",
                    "clinician",
                    password="benchmark password 42",
                    actor=admin,
                    source="bench",
                )
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--writes", type=int, default=250, help="writes per thread per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="also this PostgreSQL URL (see .ci/postgres.sh)")
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="medsight-group-commit-") as tmp:
        databases = {
            "sqlite-normal": StoreSettings(data_dir=Path(tmp) / "normal"),
            "sqlite-full": StoreSettings(data_dir=Path(tmp) / "full", sqlite_synchronous="full"),
        }
        if args.postgres:
            databases["postgresql"] = StoreSettings(
                data_dir=Path(tmp) / "pg", database_url=args.postgres
            )
        for name, store in databases.items():
            prepare(store)
            rounds: dict[bool, list[dict]] = {True: [], False: []}
            for number in range(1, args.rounds + 1):
                for group_commit in (True, False):
                    figures = writes_per_second(store, group_commit, args.threads, args.writes)
                    say(f"{name} round {number} group_commit={group_commit}: {figures}")
                    rounds[group_commit].append(figures)
            for group_commit, figures in rounds.items():
                rates = [f["writes_per_second"] for f in figures]
                results.append(
                    {
                        "database": name,
                        "group_commit": group_commit,
                        "writes_per_second": round(statistics.median(rates), 1),
                        "rounds": [round(r, 1) for r in rates],
                        "transactions": statistics.median(f["transactions"] for f in figures),
                    }
                )
    print(
        json.dumps({"results": results, "threads": args.threads, "writes_per_thread": args.writes})
    )


if __name__ == "__main__":
    main()
