"""The arena: fair, tuned, multi-seed optimizer races on workloads, stored and reported."""

from optarena.arena.workload import Target, Trainable, Workload

__all__ = ["Target", "Trainable", "Workload", "load"]


def load(db):
    """The result store at ``db`` as pandas DataFrames (see :mod:`optarena.arena.export`)."""
    from optarena.arena.export import load as load_tables

    return load_tables(db)
