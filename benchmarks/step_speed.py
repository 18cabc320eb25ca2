"""Optimizer step time, memory and compile time: ``optarena bench`` as a script.

Every registered optimizer on 41.9M float32 parameters in 157 tensors (a 12-block,
width-512 transformer plus an 8000 x 512 embedding): ms per step fused and eager, the
ratio to torch's fused Adam timed in the same interleaved rounds, the ratio to the
memory-bandwidth limit for the bytes it moves, the same algorithm in torch.optim,
torch-optimizer and pytorch-optimizer (``pip install -e '.[bench]'``), state bytes per
parameter, peak extra memory during a step, and the first step's time in new processes
with cold and warm compile caches. The method is in docs/performance.md. Examples::

    python benchmarks/step_speed.py --threads 2 --out benchmarks/results/step_speed --markdown docs/performance.md
    python benchmarks/step_speed.py --optimizers adam,sgd,lamb --params small --no-compile-timing
"""

import sys

from optarena.bench.command import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="step_speed.py"))
