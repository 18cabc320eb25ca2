"""Gradient transforms over lists of tensors: the math of every optimizer, written once.

Compose them with :class:`optarena.Chain` to build an optimizer of your own.
"""

from optarena.transforms.adam import ScaleByAdam, ScaleByAdamax, ScaleByNadam, ScaleByRadam
from optarena.transforms.adaptive import ScaleByAdadelta, ScaleByAdagrad, ScaleByRms
from optarena.transforms.base import StepContext, Transform
from optarena.transforms.learning_rate import ScaleByLearningRate
from optarena.transforms.momentum import Trace
from optarena.transforms.quasi_hyperbolic import ScaleByQhadam, ScaleByQhm
from optarena.transforms.trust_ratio import ScaleByLars, ScaleByTrustRatio
from optarena.transforms.weight_decay import AddDecayedWeights

__all__ = [
    "AddDecayedWeights",
    "ScaleByAdadelta",
    "ScaleByAdagrad",
    "ScaleByAdam",
    "ScaleByAdamax",
    "ScaleByLars",
    "ScaleByLearningRate",
    "ScaleByNadam",
    "ScaleByQhadam",
    "ScaleByQhm",
    "ScaleByRadam",
    "ScaleByRms",
    "ScaleByTrustRatio",
    "StepContext",
    "Trace",
    "Transform",
]
