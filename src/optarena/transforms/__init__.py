"""Gradient transforms over lists of tensors: the math of every optimizer, written once.

Compose them with :class:`optarena.Chain` to build an optimizer of your own.
"""

from optarena.transforms.adabound import ScaleByAdabound
from optarena.transforms.adam import ScaleByAdam, ScaleByAdamax, ScaleByNadam, ScaleByRadam
from optarena.transforms.adaptive import ScaleByAdadelta, ScaleByAdagrad, ScaleByRms

# the adaptive family of 2023-2024
from optarena.transforms.ademamix import ScaleByAdemamix
from optarena.transforms.adopt import ScaleByAdopt
from optarena.transforms.base import StepContext, Transform
from optarena.transforms.cautious import CautiousMask
from optarena.transforms.centralize import CentralizeGradients
from optarena.transforms.d_adaptation import ScaleByDAdaptAdam, ScaleByProdigy
from optarena.transforms.factored import ClipByBlockRms, ScaleByFactoredRms, ScaleByRelativeStep
from optarena.transforms.learning_rate import ScaleByLearningRate
from optarena.transforms.lion import ScaleByLion
from optarena.transforms.lookahead import LookaheadSync
from optarena.transforms.masked import Masked, masked

# matrix transforms
from optarena.transforms.matrix import MatrixTransform
from optarena.transforms.momentum import Trace
from optarena.transforms.orthogonalize import Orthogonalize, TraceAverage
from optarena.transforms.quasi_hyperbolic import ScaleByQhadam, ScaleByQhm
from optarena.transforms.rprop import ScaleByRprop
from optarena.transforms.schedule_free import ScaleByScheduleFreeRms, ScheduleFreeAverage
from optarena.transforms.shampoo import ScaleByShampoo
from optarena.transforms.sm3 import ScaleBySm3
from optarena.transforms.soap import ScaleBySoap
from optarena.transforms.sophia import ScaleBySophia
from optarena.transforms.trust_ratio import ScaleByLars, ScaleByTrustRatio
from optarena.transforms.weight_decay import AddDecayedWeights

__all__ = [
    "AddDecayedWeights",
    "CentralizeGradients",
    "ClipByBlockRms",
    "LookaheadSync",
    "Masked",
    "ScaleByAdabound",
    "ScaleByAdadelta",
    "ScaleByAdagrad",
    "ScaleByAdam",
    "ScaleByAdamax",
    "ScaleByFactoredRms",
    "ScaleByLars",
    "ScaleByLearningRate",
    "ScaleByNadam",
    "ScaleByQhadam",
    "ScaleByQhm",
    "ScaleByRadam",
    "ScaleByRelativeStep",
    "ScaleByRms",
    "ScaleByRprop",
    "ScaleByTrustRatio",
    "StepContext",
    "Trace",
    "Transform",
    "masked",
    # the adaptive family of 2023-2024
    "CautiousMask",
    "ScaleByAdemamix",
    "ScaleByAdopt",
    "ScaleByDAdaptAdam",
    "ScaleByLion",
    "ScaleByProdigy",
    "ScaleByScheduleFreeRms",
    "ScaleBySophia",
    "ScheduleFreeAverage",
    # matrix transforms
    "MatrixTransform",
    "Orthogonalize",
    "ScaleByShampoo",
    "ScaleBySoap",
    "ScaleBySm3",
    "TraceAverage",
]
