"""The arena's result store: one SQLite file (WAL mode) that races write and reports read.

Tables (``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`, ``PRAGMA application_id``
marks the file as optarena's):

- ``workloads``: one row per workload configuration (name, spec, steps, target, options),
  keyed by a hash of that configuration;
- ``trials``: one row per run, keyed by a hash of (workload configuration, optimizer,
  hyperparameters, seed, optarena version), holding its summary (status, final and best
  value of the target metric, steps and seconds to the target, timing);
- ``metrics``: the per-step values of a run (``train_loss`` at every step, the evaluated
  metrics every ``eval_every`` steps, and at those steps the diagnostics named
  ``signal:...`` and ``diagnostic:...``, :mod:`optarena.arena.trial_diagnostics`);
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
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
    """A result store that cannot be used as asked; the message names the file, what is wrong and what to do.

    ``status`` is the command's exit status: 2 when the file given is not usable (not a
    store, damaged, read-only, in a missing folder, of another schema version), 1 when
    work failed on a usable one (a full disk, an I/O error, a lock held too long).
    """

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


SIDE_FILES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps next to a store while it is open."""


def store_files(path: str | Path) -> list[Path]:
    """The store file and its SQLite side files (inputs that an output must never replace)."""
    path = Path(path)
    return [path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)]


# SQLite's primary result codes (https://www.sqlite.org/rescode.html).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


def explain(error: sqlite3.Error, path: Path) -> StoreError:
    """A :class:`StoreError` that says in words what an SQLite error means for the store at ``path``."""
    name = repr(str(path))
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error)
    if primary == _READONLY or "readonly" in text:
        return StoreError(
            f"cannot write the result store {name}: the file or its folder is read-only ({text}); give --db a "
            "file in a folder you can write (`optarena report` reads a read-only store)"
        )
    if primary in (_CORRUPT, _NOTADB) or "malformed" in text:
        return StoreError(
            f"the result store {name} is damaged ({text}); restore it from a copy or race into a new --db file "
            "(`sqlite3 FILE .recover` may save what is left)"
        )
    if text.startswith(("no such table", "no such column", "table ")):
        return StoreError(
            f"the result store {name} is damaged or was edited ({text}); restore it from a copy or race into a "
            "new --db file"
        )
    if primary == _CANTOPEN:
        return StoreError(
            f"cannot open the result store {name} ({text}): check that its folder exists and that you "
            "may read and write there"
        )
    if primary == _FULL:
        return StoreError(
            f"the disk holding the result store {name} is full ({text}); free space and run the same "
            "command again: nothing stored is lost",
            status=1,
        )
    if primary in (_BUSY, _LOCKED):
        return StoreError(
            f"the result store {name} stayed locked by another process ({text}); wait for it to finish "
            "and run the same command again",
            status=1,
        )
    if primary == _IOERR:
        return StoreError(f"reading or writing the result store {name} failed ({text})", status=1)
    return StoreError(f"{name} is not a usable optarena result store ({text})")


@contextmanager
def _explained(path: Path) -> Iterator[None]:
    """SQLite errors inside the block become a :class:`StoreError` naming ``path``."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError, sqlite3.NotSupportedError):
        raise  # a caller's mistake, not the file's
    except sqlite3.DatabaseError as error:
        raise explain(error, path) from None
    except UnicodeDecodeError as error:  # SQLite's own message about the damage is not text
        raise _undecodable(path, error) from None


def _undecodable(path: Path, error: UnicodeDecodeError) -> StoreError:
    return StoreError(
        f"the result store {str(path)!r} is damaged (bytes that are not UTF-8 text: {error.reason}); restore it from "
        "a copy or race into a new --db file"
    )


@lru_cache(maxsize=1)
def _expected_columns() -> dict[str, list[str]]:
    """Each table of :data:`_SCHEMA` and its columns, as SQLite reads the schema."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(_SCHEMA)
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [row[1] for row in db.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        db.close()


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
        name = repr(str(self.path))
        if self.path.is_dir():
            raise StoreError(f"{name} is a directory, not a result store file")
        if readonly or not create:
            if not self.path.is_file():
                raise StoreError(f"no result store at {name}: run `optarena race --db {self.path}` first")
        elif not self.path.parent.is_dir():
            raise StoreError(
                f"the folder {str(self.path.parent)!r} of the result store {name} does not exist; create it or give "
                "--db a file in an existing folder"
            )
        try:
            self._db = self._connect(readonly)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._check_or_create(readonly)
        except sqlite3.Error as error:
            self._close_quietly()
            if (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF == _NOTADB:
                raise StoreError(f"{name} is not an optarena result store ({error})") from None
            raise explain(error, self.path) from None
        except UnicodeDecodeError as error:
            self._close_quietly()
            raise _undecodable(self.path, error) from None
        except StoreError:
            self._close_quietly()
            raise

    # -- opening -----------------------------------------------------------------------------

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        if not readonly:
            # Autocommit mode: every write below opens and commits its own transaction.
            return sqlite3.connect(self.path, timeout=30, isolation_level=None)
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as error:
            db.close()
            # A store in a folder we may not write: SQLite cannot make the shared-memory file
            # that WAL readers need. With no write-ahead log left (the last writer closed
            # cleanly), the file alone is the whole store and is read as immutable.
            wal = self.path.with_name(self.path.name + "-wal")
            if "readonly" not in str(error) or (wal.exists() and wal.stat().st_size > 0):
                raise
            return sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=30, isolation_level=None)

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
        expected = _expected_columns()
        missing = [table for table in expected if table not in tables]
        if missing:
            raise StoreError(
                f"the result store {str(self.path)!r} lacks the table(s) {', '.join(missing)}: it is damaged or was "
                f"edited (an optarena store holds {', '.join(expected)}); restore it from a copy or race into a new "
                "--db file"
            )
        for table, columns in expected.items():
            found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            lacking = [c for c in columns if c not in found]
            if lacking:
                raise StoreError(
                    f"the table {table} of the result store {str(self.path)!r} lacks the column(s) "
                    f"{', '.join(lacking)}: it is damaged or was edited; restore it from a copy or race into a new "
                    "--db file"
                )
        if not readonly:
            # Before anything is written: a damaged store is refused as it is, not altered.
            verdict = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if verdict != "ok":
                raise StoreError(
                    f"the result store {str(self.path)!r} is damaged ({verdict}); restore it from a copy or race into "
                    "a new --db file (`sqlite3 FILE .recover` may save what is left)"
                )
            db.execute("PRAGMA journal_mode = WAL")
            # A write that is rolled back: fails now, not after the first trial, when the
            # file is read-only.
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            finally:
                db.execute("ROLLBACK")
        db.execute("PRAGMA synchronous = FULL" if not readonly else "PRAGMA query_only = ON")

    def close(self) -> None:
        with _explained(self.path):
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        db = self._db
        with _explained(self.path):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def add_workload(self, row: dict[str, Any]) -> None:
        """Record a workload configuration (nothing happens when it is already there)."""
        columns = (
            "key",
            "name",
            "spec",
            "description",
            "config",
            "target_metric",
            "target_value",
            "target_mode",
            "steps",
            "eval_every",
        )
        with self._transaction() as db:
            db.execute(_insert_if_new("workloads", columns), [row[c] for c in columns])

    def add_study(self, row: dict[str, Any]) -> None:
        """Record a study (nothing happens when it is already there)."""
        columns = (
            "id",
            "workload_key",
            "optimizer",
            "search",
            "tune",
            "trials",
            "seeds",
            "search_seed",
            "optarena_version",
            "created_at",
        )
        with self._transaction() as db:
            db.execute(_insert_if_new("studies", columns), [row[c] for c in columns])

    def link(self, study: str, phase: str, number: int, trial: str) -> None:
        """Record that ``study`` used stored trial ``trial`` as its ``phase`` trial ``number``."""
        with self._transaction() as db:
            db.execute(*_link_statement(study, phase, number, trial))

    def save_trial(
        self, row: dict[str, Any], metrics: Sequence[tuple[str, int, float]], links: Sequence[tuple[str, str, int]] = ()
    ) -> bool:
        """Write a trial, its ``(name, step, value)`` metrics and its ``(study, phase, number)`` links atomically.

        Returns False (and writes only missing links) when a trial with the same key is
        already stored: its metrics are those of the first writer.
        """
        columns = (
            "key",
            "workload_key",
            "optimizer",
            "hyperparameters",
            "seed",
            "optarena_version",
            "status",
            "steps_done",
            "diverged_step",
            "final_metric",
            "best_metric",
            "best_step",
            "final_train_loss",
            "steps_to_target",
            "seconds_to_target",
            "train_seconds",
            "eval_seconds",
            "threads",
            "host",
            "finished_at",
        )
        with self._transaction() as db:
            inserted = (
                db.execute(
                    _insert_if_new("trials", columns),
                    [_number(row[c]) if isinstance(row[c], float) else row[c] for c in columns],
                ).rowcount
                == 1
            )
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
        with _explained(self.path):
            row = self._db.execute("SELECT key, status, final_metric FROM trials WHERE key = ?", (key,)).fetchone()
        return StoredTrial(*row) if row else None

    def rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a read-only query as dicts."""
        with _explained(self.path):
            cursor = self._db.execute(sql, parameters)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def count(self, table: str) -> int:
        if table not in ("workloads", "trials", "metrics", "studies", "study_trials"):
            raise ValueError(f"unknown table {table!r}")
        with _explained(self.path):
            return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def _link_statement(study: str, phase: str, number: int, trial: str) -> tuple[str, Sequence[Any]]:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    return (
        "INSERT OR IGNORE INTO study_trials (study, phase, number, trial) VALUES (?, ?, ?, ?)",
        (study, phase, number, trial),
    )


def _insert_if_new(table: str, columns: Sequence[str]) -> str:
    """``INSERT OR IGNORE`` of one row into ``table``, one ``?`` per column."""
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
