"""Step-speed and memory benchmark of the optimizers (``optarena bench``).

For every registered optimizer: milliseconds per step on a fixed parameter set, fused and
eager, against torch's fused Adam measured in the same interleaved rounds, against the
memory-bandwidth limit for the bytes it moves, and against the same algorithm in
``torch.optim`` and two popular libraries; optimizer-state bytes, peak extra memory during
a step, and the first step's compile time in a new process, cold and warm.

Modules, one job each: :mod:`.params` (the parameter sets), :mod:`.bandwidth` (streaming
triad), :mod:`.traffic` (state bytes and bytes moved per parameter), :mod:`.timing`
(interleaved rounds), :mod:`.memory` (peak extra memory of one step), :mod:`.compile_time`
and :mod:`.compile_probe` (first step in new processes), :mod:`.peers` (the same algorithm
elsewhere), :mod:`.runner` (all of it for a list of optimizers), :mod:`.report` (table, CSV,
JSON, the docs page) and :mod:`.command` (the subcommand). Start at
:func:`optarena.bench.runner.run_benchmark`.
"""
