"""The named optimizers: each a torch.optim.Optimizer built from a chain of transforms.

The import lines below are the one list of optimizer modules: the exports, the registry
(``SPECS``, each module's specifications in this order), the docs page and the test table
all follow from it. Adding an optimizer: its module (class and ``SPECS``), one line here,
and its reference test.
"""

import sys

# The order of these lines is the order of the registry, the docs and the tests: keep it.
# isort: off
from optarena.optim.sgd import SGD
from optarena.optim.adagrad import Adagrad
from optarena.optim.adadelta import Adadelta
from optarena.optim.rmsprop import RMSprop
from optarena.optim.adam import Adam
from optarena.optim.adamax import Adamax
from optarena.optim.nadam import NAdam
from optarena.optim.radam import RAdam
from optarena.optim.adamw import AdamW
from optarena.optim.rprop import Rprop
from optarena.optim.lazyadam import LazyAdam
from optarena.optim.adabound import AdaBound
from optarena.optim.adafactor import Adafactor
from optarena.optim.lamb import LAMB
from optarena.optim.lars import LARS
from optarena.optim.qhm import QHM
from optarena.optim.qhadam import QHAdam
from optarena.optim.qhadamw import QHAdamW
from optarena.optim.lookahead import Lookahead
from optarena.optim.ranger import Ranger
from optarena.optim.ranger_lars import RangerLARS
from optarena.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from optarena.optim.lion import CautiousLion, Lion
from optarena.optim.cautious_adamw import CautiousAdamW
from optarena.optim.d_adaptation import DAdaptAdam, Prodigy
from optarena.optim.adopt import ADOPT
from optarena.optim.ademamix import AdEMAMix
from optarena.optim.sophia import Sophia
from optarena.optim.muon import Muon
from optarena.optim.muon_adamw import MuonWithAdamW
from optarena.optim.shampoo import Shampoo
from optarena.optim.soap import SOAP
from optarena.optim.sm3 import SM3
from optarena.optim.kfac import KFAC

# isort: on
from optarena.optim.base import Chain, ChainOptimizer, NamedOptimizer, Paper  # noqa: E402 - after the list
from optarena.spec import Spec  # noqa: E402

OPTIMIZERS = tuple(
    value
    for name, value in list(globals().items())
    if isinstance(value, type)
    and getattr(value, "__module__", "").startswith("optarena.optim.")
    and not name.startswith("_")
    and value.__module__ not in ("optarena.optim.base",)
)
"""The optimizer classes, in the order of the imports above."""

SPECS: tuple[Spec, ...] = tuple(
    spec for module in dict.fromkeys(sys.modules[cls.__module__] for cls in OPTIMIZERS) for spec in module.SPECS
)
"""Every registered name's specification, in the order of the modules above."""

__all__ = [cls.__name__ for cls in OPTIMIZERS] + ["Chain", "ChainOptimizer", "NamedOptimizer", "Paper"]
