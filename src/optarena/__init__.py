"""optarena: faithful, fast PyTorch optimizers and a lab to choose between them."""

from optarena.optim import (
    SGD,
    AMSGrad,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Chain,
    Lookahead,
    NAdam,
    RAdam,
    Ranger,
    RangerLARS,
    RMSprop,
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
    "Lookahead",
    "Ranger",
    "RangerLARS",
    "Chain",
    "available",
    "create",
    "__version__",
]
