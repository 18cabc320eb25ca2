"""optarena: faithful, fast PyTorch optimizers and a lab to choose between them."""

from optarena import optim
from optarena.optim import *  # noqa: F403 - the optimizer classes, listed once in optarena.optim
from optarena.optim.muon_adamw import is_hidden_matrix
from optarena.optim.routing import param_groups, partition
from optarena.registry import available, create
from optarena.transforms.masked import masked

__version__ = "0.1.0"

__all__ = [
    *optim.__all__,
    "partition",
    "masked",
    "param_groups",
    "is_hidden_matrix",
    "available",
    "create",
    "__version__",
]
