"""The arena: fair, tuned, multi-seed optimizer races on workloads, stored and reported."""

from optarena.arena.workload import Target, Trainable, Workload

__all__ = ["Target", "Trainable", "Workload"]
