"""The named optimizers: each a torch.optim.Optimizer built from a chain of transforms."""

from optarena.optim.adabound import AdaBound, AMSBound
from optarena.optim.adadelta import Adadelta
from optarena.optim.adafactor import Adafactor
from optarena.optim.adagrad import Adagrad
from optarena.optim.adam import Adam
from optarena.optim.adamax import Adamax
from optarena.optim.adamw import AdamW
from optarena.optim.amsgrad import AMSGrad
from optarena.optim.base import Chain, ChainOptimizer, NamedOptimizer, Paper
from optarena.optim.lamb import LAMB
from optarena.optim.lars import LARS
from optarena.optim.lazyadam import LazyAdam
from optarena.optim.lookahead import Lookahead
from optarena.optim.nadam import NAdam
from optarena.optim.qhadam import QHAdam
from optarena.optim.qhadamw import QHAdamW
from optarena.optim.qhm import QHM
from optarena.optim.radam import RAdam
from optarena.optim.ranger import Ranger
from optarena.optim.ranger_lars import RangerLARS
from optarena.optim.rmsprop import RMSprop
from optarena.optim.rprop import Rprop
from optarena.optim.sgd import SGD

# matrix-preconditioned optimizers
from optarena.optim.muon import Muon
from optarena.optim.shampoo import Shampoo
from optarena.optim.soap import SOAP
from optarena.optim.sm3 import SM3
from optarena.optim.kfac import KFAC
from optarena.optim.muon_adamw import MuonWithAdamW, is_hidden_matrix, muon_split

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
    "ChainOptimizer",
    "NamedOptimizer",
    "Paper",
]
