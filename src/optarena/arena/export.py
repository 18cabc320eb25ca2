"""Results out: a store's tables as pandas DataFrames, or as CSV or Parquet files.

    >>> runs = optarena.arena.load("runs.sqlite")          # doctest: +SKIP
    >>> runs.trials.groupby(["workload", "optimizer"]).final_metric.max()
    >>> runs.metrics.query("name == 'train_loss'")

``optarena export --db runs.sqlite --format csv --out DIR`` writes the same frames, one
file each. pandas (and pyarrow for Parquet) are the ``analysis`` extra:
``pip install 'optarena[analysis]'``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from optarena.arena.store import Store

FORMATS = ("csv", "parquet")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("loading results as DataFrames needs pandas: pip install 'optarena[analysis]'") from None
    return pandas


@dataclass
class Tables:
    """A store's contents as DataFrames."""

    workloads: Any
    """One row per workload configuration: key, name, spec, target, budget, options (JSON)."""
    trials: Any
    """One row per run, with its workload's name and target: hyperparameters (JSON), seed, status, final and best
    metric, steps and seconds to target, timing."""
    metrics: Any
    """Per-step values, long format: trial, workload, optimizer, seed, name, step, value."""
    studies: Any
    """One row per study: workload, optimizer, search (``algoperf-external`` / ``algoperf-self`` for AlgoPerf
    studies), budget, seeds, search seed."""
    study_trials: Any
    """Which trial each study used: study, phase (``tune`` / ``rerun``), number, trial."""
    targets: Any
    """Targets set by ``optarena targets`` (empty when none)."""

    def frames(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load(db: str | Path) -> Tables:
    """Read the store at ``db`` (read-only) into DataFrames."""
    pandas = _pandas()
    with Store(db, readonly=True) as store:  # checks that it is a store this version reads
        has_targets = store.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'targets'")
    connection = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True, timeout=30)
    try:

        def frame(sql: str) -> Any:
            return pandas.read_sql_query(sql, connection)

        workloads = frame("SELECT * FROM workloads ORDER BY rowid")
        trials = frame(
            "SELECT w.name AS workload, w.target_metric, w.target_value, w.target_mode, t.* "
            "FROM trials t JOIN workloads w ON w.key = t.workload_key ORDER BY t.rowid"
        )
        metrics = frame(
            "SELECT m.trial, w.name AS workload, t.optimizer, t.seed, m.name, m.step, m.value "
            "FROM metrics m JOIN trials t ON t.key = m.trial JOIN workloads w ON w.key = t.workload_key "
            "ORDER BY t.rowid, m.name, m.step"
        )
        studies = frame(
            "SELECT w.name AS workload, s.* FROM studies s JOIN workloads w ON w.key = s.workload_key ORDER BY s.rowid"
        )
        study_trials = frame("SELECT * FROM study_trials ORDER BY study, phase, number")
        targets = frame("SELECT * FROM targets ORDER BY rowid") if has_targets else pandas.DataFrame()
    finally:
        connection.close()
    for table, column in ((trials, "hyperparameters"), (workloads, "config"), (studies, "tune")):
        if len(table):
            table[column] = table[column].map(json.loads).map(lambda v: json.dumps(v, sort_keys=True))
    return Tables(workloads, trials, metrics, studies, study_trials, targets)


def export(db: str | Path, out: str | Path, format: str = "csv") -> list[Path]:
    """Write every table of the store at ``db`` into directory ``out`` as ``format`` files; returns the paths."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; allowed: {', '.join(FORMATS)}")
    if format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Parquet needs pyarrow: pip install 'optarena[analysis]'") from None
    tables = load(db)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{str(out)!r} is a file; --out names a directory to write the tables into")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.frames().items():
        path = out / f"{name}.{format}"
        partial = path.with_name(path.name + ".partial")
        if format == "csv":
            frame.to_csv(partial, index=False)
        else:
            frame.to_parquet(partial, index=False)
        partial.replace(path)
        written.append(path)
    return written


def add_command(commands: Any) -> None:
    """Register ``optarena export``."""
    parser = commands.add_parser(
        "export",
        help="write a result store's tables as CSV or Parquet files",
        description="Write the workloads, trials, per-step metrics, studies, study links and targets of a result "
        "store, one file per table, for analysis with your own tools. From Python: optarena.arena.load(DB).",
    )
    parser.add_argument("--db", default="runs.sqlite", help="result store to read (default runs.sqlite)")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or parquet")
    parser.add_argument("--out", default="export", help="directory to write into (default ./export)")
    parser.set_defaults(run=_run)


def _run(args: Any) -> int:
    import sys

    from optarena.arena.store import StoreError

    try:
        written = export(args.db, args.out, args.format)
    except (StoreError, ValueError, ImportError) as error:
        print(f"optarena export: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {len(written)} files to {args.out}: {', '.join(p.name for p in written)}.")
    return 0
