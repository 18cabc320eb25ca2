"""optarena: faithful, fast PyTorch optimizers and a lab to choose between them."""

from optarena.optim import (
    SGD,
    AdaBound,
    Adafactor,
    AMSBound,
    AMSGrad,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Chain,
    LazyAdam,
    Lookahead,
    NAdam,
    RAdam,
    Ranger,
    RangerLARS,
    RMSprop,
    Rprop,
)
from optarena.registry import available, create

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Adam",
    "AMSGrad",
    "Adamax",
    "NAdam",
    "RAdam",
    "AdamW",
    "Rprop",
    "LazyAdam",
    "AdaBound",
    "AMSBound",
    "Adafactor",
    "Lookahead",
    "Ranger",
    "RangerLARS",
    "Chain",
    "available",
    "create",
    "__version__",
]
