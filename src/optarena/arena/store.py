"""The arena's result store: one SQLite file (WAL mode) that races write and reports read.

Tables (``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`, ``PRAGMA application_id``
marks the file as optarena's):

- ``workloads``: one row per workload configuration (name, spec, steps, target, options),
  keyed by a hash of that configuration;
- ``trials``: one row per run, keyed by a hash of (workload configuration, optimizer,
  hyperparameters, seed, optarena version), holding its summary (status, final and best
  value of the target metric, steps and seconds to the target, timing);
- ``metrics``: the per-step values of a run (``train_loss`` at every step, the evaluated
  metrics every ``eval_every`` steps);
- ``studies``: one optimizer's part of a race on one workload (search strategy, budget,
  seeds), keyed by a hash of those settings;
- ``study_trials``: which trials a study used, as tuning trial ``number`` or as the rerun
  on seed ``number``.

A trial, its metrics and its links are written in one transaction, so a process killed
at any instant leaves either the whole trial or nothing of it. Inserts ignore rows that
already exist, so writing a trial twice changes nothing.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
APPLICATION_ID = 0x6F707461  # "opta"
PHASES = ("tune", "rerun")

TIMING_COLUMNS = {
    "trials": ("train_seconds", "eval_seconds", "seconds_to_target", "finished_at", "host"),
    "studies": ("created_at",),
}
"""Columns that depend on when and where a run happened, not on what was run."""

_SCHEMA = """
CREATE TABLE workloads (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    description TEXT NOT NULL,
    config TEXT NOT NULL,
    target_metric TEXT NOT NULL,
    target_value REAL NOT NULL,
    target_mode TEXT NOT NULL CHECK (target_mode IN ('min', 'max')),
    steps INTEGER NOT NULL,
    eval_every INTEGER NOT NULL
);
CREATE TABLE trials (
    key TEXT PRIMARY KEY,
    workload_key TEXT NOT NULL REFERENCES workloads(key),
    optimizer TEXT NOT NULL,
    hyperparameters TEXT NOT NULL,
    seed INTEGER NOT NULL,
    optarena_version TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'diverged')),
    steps_done INTEGER NOT NULL,
    diverged_step INTEGER,
    final_metric REAL,
    best_metric REAL,
    best_step INTEGER,
    final_train_loss REAL,
    steps_to_target INTEGER,
    seconds_to_target REAL,
    train_seconds REAL NOT NULL,
    eval_seconds REAL NOT NULL,
    threads INTEGER,
    host TEXT NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE INDEX trials_by_workload ON trials (workload_key, optimizer);
CREATE TABLE metrics (
    trial TEXT NOT NULL REFERENCES trials(key),
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL,
    PRIMARY KEY (trial, name, step)
) WITHOUT ROWID;
CREATE TABLE studies (
    id TEXT PRIMARY KEY,
    workload_key TEXT NOT NULL REFERENCES workloads(key),
    optimizer TEXT NOT NULL,
    search TEXT NOT NULL,
    tune TEXT NOT NULL,
    trials INTEGER NOT NULL,
    seeds INTEGER NOT NULL,
    search_seed INTEGER NOT NULL,
    optarena_version TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE study_trials (
    study TEXT NOT NULL REFERENCES studies(id),
    phase TEXT NOT NULL CHECK (phase IN ('tune', 'rerun')),
    number INTEGER NOT NULL,
    trial TEXT NOT NULL REFERENCES trials(key),
    PRIMARY KEY (study, phase, number)
) WITHOUT ROWID;
"""


class StoreError(Exception):
    """A file that is not an optarena store, or one written by an incompatible version."""


def canonical_json(value: Any) -> str:
    """Sorted, compact JSON (tuples become lists); a ValueError for NaN, infinity or non-JSON values."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot store {value!r} as JSON: {error}") from None


def _number(value: float | None) -> float | None:
    """SQLite has no NaN (it becomes NULL); keep infinities, store NaN as NULL on purpose."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


@dataclass(frozen=True)
class StoredTrial:
    """What a race needs to know about a trial that is already stored."""

    key: str
    status: str
    final_metric: float | None


class Store:
    """An optarena result store at ``path`` (created when ``create`` and missing).

    ``readonly`` opens an existing store without writing to it. A file that is not an
    optarena store, or whose schema version differs from :data:`SCHEMA_VERSION`, raises
    :class:`StoreError` with what to do.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False, create: bool = True):
        self.path = Path(path)
        if readonly or not create:
            if not self.path.is_file():
                raise StoreError(f"no result store at {str(self.path)!r}: run `optarena race --db {self.path}` first")
        if self.path.is_dir():
            raise StoreError(f"{str(self.path)!r} is a directory, not a result store file")
        try:
            if readonly:
                self._db = sqlite3.connect(
                    f"file:{self.path.resolve()}?mode=ro", uri=True, timeout=30, isolation_level=None
                )
            else:
                # Autocommit mode: every write below opens and commits its own transaction.
                self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._check_or_create(readonly)
        except sqlite3.DatabaseError as error:
            self._close_quietly()
            raise StoreError(f"{str(self.path)!r} is not an optarena result store ({error})") from None
        except StoreError:
            self._close_quietly()
            raise

    # -- opening -----------------------------------------------------------------------------

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()

    def _check_or_create(self, readonly: bool) -> None:
        db = self._db
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        application = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if not tables and application == 0:
            if readonly:
                raise StoreError(f"{str(self.path)!r} is an empty SQLite file, not an optarena result store")
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(
                "BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA application_id = {APPLICATION_ID};"
                f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
            db.execute("PRAGMA synchronous = FULL")
            return
        if application != APPLICATION_ID:
            raise StoreError(
                f"{str(self.path)!r} is an SQLite file of another application, not an optarena result store; "
                "give --db a new file name"
            )
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{str(self.path)!r} has store schema version {version}, and this optarena reads version "
                f"{SCHEMA_VERSION}: use the optarena version that wrote it, or race again into a new --db file"
            )
        if not readonly:
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL" if not readonly else "PRAGMA query_only = ON")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add_workload(self, row: dict[str, Any]) -> None:
        """Record a workload configuration (nothing happens when it is already there)."""
        columns = ("key", "name", "spec", "description", "config", "target_metric", "target_value",
                   "target_mode", "steps", "eval_every")
        with self._transaction() as db:
            db.execute(_insert_if_new("workloads", columns), [row[c] for c in columns])

    def add_study(self, row: dict[str, Any]) -> None:
        """Record a study (nothing happens when it is already there)."""
        columns = ("id", "workload_key", "optimizer", "search", "tune", "trials", "seeds", "search_seed",
                   "optarena_version", "created_at")
        with self._transaction() as db:
            db.execute(_insert_if_new("studies", columns), [row[c] for c in columns])

    def link(self, study: str, phase: str, number: int, trial: str) -> None:
        """Record that ``study`` used stored trial ``trial`` as its ``phase`` trial ``number``."""
        with self._transaction() as db:
            db.execute(*_link_statement(study, phase, number, trial))

    def save_trial(self, row: dict[str, Any], metrics: Sequence[tuple[str, int, float]],
                   links: Sequence[tuple[str, str, int]] = ()) -> bool:
        """Write a trial, its ``(name, step, value)`` metrics and its ``(study, phase, number)`` links atomically.

        Returns False (and writes only missing links) when a trial with the same key is
        already stored: its metrics are those of the first writer.
        """
        columns = ("key", "workload_key", "optimizer", "hyperparameters", "seed", "optarena_version", "status",
                   "steps_done", "diverged_step", "final_metric", "best_metric", "best_step", "final_train_loss",
                   "steps_to_target", "seconds_to_target", "train_seconds", "eval_seconds", "threads", "host",
                   "finished_at")
        with self._transaction() as db:
            inserted = db.execute(
                _insert_if_new("trials", columns),
                [_number(row[c]) if isinstance(row[c], float) else row[c] for c in columns],
            ).rowcount == 1
            if inserted:
                db.executemany(
                    "INSERT INTO metrics (trial, name, step, value) VALUES (?, ?, ?, ?)",
                    [(row["key"], name, step, _number(value)) for name, step, value in metrics],
                )
            for study, phase, number in links:
                db.execute(*_link_statement(study, phase, number, row["key"]))
        return inserted

    # -- reading -----------------------------------------------------------------------------

    def find(self, key: str) -> StoredTrial | None:
        """The stored trial with ``key``, or None."""
        row = self._db.execute("SELECT key, status, final_metric FROM trials WHERE key = ?", (key,)).fetchone()
        return StoredTrial(*row) if row else None

    def rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a read-only query as dicts."""
        cursor = self._db.execute(sql, parameters)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def count(self, table: str) -> int:
        if table not in ("workloads", "trials", "metrics", "studies", "study_trials"):
            raise ValueError(f"unknown table {table!r}")
        return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def _link_statement(study: str, phase: str, number: int, trial: str) -> tuple[str, Sequence[Any]]:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    return ("INSERT OR IGNORE INTO study_trials (study, phase, number, trial) VALUES (?, ?, ?, ?)",
            (study, phase, number, trial))


def _insert_if_new(table: str, columns: Sequence[str]) -> str:
    """``INSERT OR IGNORE`` of one row into ``table``, one ``?`` per column."""
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
