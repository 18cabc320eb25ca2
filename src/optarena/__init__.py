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
    LAMB,
    LARS,
    Lookahead,
    NAdam,
    QHAdam,
    QHAdamW,
    QHM,
    RAdam,
    Ranger,
    RangerLARS,
    RMSprop,
    Rprop,
)

# matrix-preconditioned optimizers
from optarena.optim import KFAC, SM3, SOAP, Muon, MuonWithAdamW, Shampoo, is_hidden_matrix, muon_split
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
    "LAMB",
    "LARS",
    "QHM",
    "QHAdam",
    "QHAdamW",
    "Lookahead",
    "Ranger",
    "RangerLARS",
    # matrix-preconditioned optimizers
    "Muon",
    "Shampoo",
    "SOAP",
    "SM3",
    "KFAC",
    "MuonWithAdamW",
    "is_hidden_matrix",
    "muon_split",
    "Chain",
    "available",
    "create",
    "__version__",
]
