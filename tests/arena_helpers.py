"""Shared pieces of the arena tests: tiny races and table dumps that ignore timing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from optarena.arena.executors import InlineExecutor
from optarena.arena.race import RaceConfig, make_plan, run_race
from optarena.arena.store import TIMING_COLUMNS, Store

TABLES = ("workloads", "trials", "metrics", "studies", "study_trials")


def race(db: Path, workloads=("toy_workloads:regression",), optimizers=("sgd", "adam"), **settings):
    """Run a race inline (one thread) into ``db``; returns the outcome."""
    config = RaceConfig(tuple(workloads), tuple(optimizers), **{"trials": 3, "seeds": 2, **settings})
    with Store(db) as store:
        return run_race(make_plan(config), store, InlineExecutor(threads=1))


def contents(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, without the columns that record when and where a trial ran."""
    connection = sqlite3.connect(db)
    try:
        out = {}
        for table in TABLES:
            columns = [
                row[1]
                for row in connection.execute(f"PRAGMA table_info({table})")
                if row[1] not in TIMING_COLUMNS.get(table, ())
            ]
            rows = connection.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        connection.close()
