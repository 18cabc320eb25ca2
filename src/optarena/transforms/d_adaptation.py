"""Learning-rate estimates of D-Adaptation and Prodigy: sums over a whole param group.

Both estimate the distance to the solution, ``d``, from sums over every parameter of a
group (a weighted inner product of gradients with a displacement, and the L1 norm of an
accumulated gradient ``s``), so the estimate needs one pass over the group before any
parameter moves. :meth:`prepare_group` makes that pass: it updates ``s``, takes each tensor's
contribution, completes the sums of sharded tensors across ranks in one collective
(:func:`optarena.transforms.sharding.all_reduce_sums`), adds them up in Python and updates
the estimate kept in the param group. Each bucket's math then uses the new estimate.

On the fused path the per-tensor part is compiled (:func:`prodigy_sums`, :func:`dadapt_sums`,
run by :mod:`optarena.optim.group_pass`): loops over each tensor that update ``s`` in place
and reduce the sums alongside, with no temporary as large as a parameter (one loop for
Prodigy, two for D-Adaptation, whose inner product reads the old ``s``; docs/floors.md).
D-Adaptation Adam's step needs only the old estimate, so after its first moving step the
compiled pass is the whole step (:func:`dadapt_step`, see :class:`ScaleByDAdaptAdam`).
Eagerly it is made of multi-tensor operations, each tensor's sums reduced as the authors'
packages reduce them.

Where the sum of ``|s|`` is zero (every gradient zero so far, or a learning rate of 0) the
step moves no parameter and keeps the estimate, as in the authors' packages. Where ``d`` has
grown so far that a number the step multiplies tensors by no longer fits the math's dtype
(gradients that keep one direction make it grow without bound), the step raises
:class:`EstimateDiverged` before it touches anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Flag, Hyper, Optional, Real, Tuple
from optarena.transforms import sharding
from optarena.transforms.base import GroupPass, Kernel, Prepared, StepContext, Transform, zeros
from optarena.transforms.lookahead import slow_copy
from optarena.transforms.ops import LOOP, ListOps
from optarena.transforms.weight_decay import DECOUPLED, WEIGHT_DECAY, AddDecayedWeights

POSITIVE = Real(0.0, open_low=True)
BETAS = Hyper((0.9, 0.999), Tuple((UNIT, UNIT)), "decay rates of the first and second moments")
D0 = Hyper(1e-6, POSITIVE, "initial estimate of d")
GROWTH_RATE = Hyper(math.inf, POSITIVE, "largest factor by which d may grow in one step")
BIAS_CORRECTION = Hyper(False, Flag(), "scale the step by Adam's bias corrections")


class EstimateDiverged(FloatingPointError):
    """The estimate ``d`` has grown so far that the numbers a step multiplies tensors by no
    longer fit the math's dtype: the run has diverged. Raised before the step touches anything."""


def check_estimate(
    transform: Transform, d: float, scalars: Mapping[str, float], contexts: Sequence[StepContext]
) -> None:
    """Raise :class:`EstimateDiverged` when one of the numbers this step multiplies tensors by
    (``scalars``, by name; they grow with ``d``) is not finite or exceeds the largest number of
    the math's dtype (float64 when every parameter is, else float32). Otherwise torch fails
    later, inside a multi-tensor operation, with an error that does not name ``d``, after the
    group's sums and estimate had changed."""
    wide = all(p.dtype == torch.float64 for ctx in contexts for p in ctx.params)
    dtype = torch.float64 if wide else torch.float32
    largest = torch.finfo(dtype).max
    bad = [(name, value) for name, value in scalars.items() if not math.isfinite(value) or abs(value) > largest]
    if not bad:
        return
    name, value = bad[0]
    raise EstimateDiverged(
        f"{type(transform).__name__}: the estimate d = {d:.4g} has diverged: this step's {name} = {value:.4g} "
        f"does not fit {str(dtype).removeprefix('torch.')} (largest {largest:.4g}). d grows without bound "
        "when the gradients keep one direction; a finite growth_rate or a smaller lr or d0 bounds it. "
        "This step changed nothing."
    )


def math_params(ctx: StepContext) -> list[Tensor]:
    """The parameters as the math sees them: in the state's dtype for half precision."""
    if ctx.state_dtype is None:
        return ctx.params
    return [p.to(ctx.state_dtype) for p in ctx.params]


def gradients(ctx: StepContext, maximize: bool, decay: float) -> list[Tensor]:
    """The direction the chain starts from: the gradients (negated with ``maximize``), plus
    ``decay * theta`` for coupled weight decay, as the math sees them."""
    grads = [ctx.view(cast(Tensor, p.grad)) for p in ctx.originals]  # contexts hold parameters with gradients
    if ctx.state_dtype is not None:
        grads = [g.to(ctx.state_dtype) for g in grads]
    if maximize:
        grads = list(torch._foreach_neg(grads))
    if decay != 0:
        grads = list(torch._foreach_add(grads, math_params(ctx), alpha=decay))
    return grads


def group_sums(contexts: list[StepContext], sums: list[list[Tensor]]) -> list[list[float]]:
    """Per-tensor partial sums (``sums[c][i]``: a 1-d tensor for tensor ``i`` of context ``c``),
    sharded tensors' parts completed across ranks in one collective per mesh dimension, as
    Python floats, one row per tensor in group order (read from the device at once).

    The caller adds the rows up in Python, one after the other, as the authors' packages do
    (their ``.item()`` per tensor), so that the estimate rounds as theirs: the dynamics these
    methods are run on can amplify a last-bit difference in ``d`` by 1e8 over 100 steps.
    """
    values = [v for per_context in sums for v in per_context]
    if not values:
        return []
    owners = [p for ctx in contexts for p in ctx.originals]
    sharded = [i for i, p in enumerate(owners) if sharding.is_sharded(p)]
    if sharded:  # plain tensors of the group (a layer norm beside tensor-parallel layers) are whole here
        completed = sharding.all_reduce_sums(
            [values[i] for i in sharded], [owners[i] for i in sharded], [None] * len(sharded)
        )
        for i, value in zip(sharded, completed):
            values[i] = value
    if len({(v.dtype, v.device) for v in values}) == 1:  # one conversion for them all
        return torch.stack(values).to(torch.float64).tolist()
    return torch.stack([v.to(torch.float64) for v in values]).tolist()


def l1_norms(xs: list[Tensor]) -> list[Tensor]:
    """``sum |x|`` of each tensor, reduced as ``x.abs().sum()`` (the packages' order of additions;
    ``torch._foreach_norm(xs, 1)`` adds in another)."""
    return [x.abs().sum() for x in xs]


def dot(a: Tensor, b: Tensor) -> Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


def direction(
    param: Tensor, grad: Tensor, k: Mapping[str, Any], static: Mapping[str, Hashable]
) -> tuple[Tensor, Tensor]:
    """One tensor's direction and parameter as the math sees them, in the compiled pass: as
    :func:`gradients` and :func:`math_params` (``k["decay"]``: coupled weight decay)."""
    dtype = static["compute_dtype"]
    if dtype is not None:
        param, grad = param.to(cast(torch.dtype, dtype)), grad.to(cast(torch.dtype, dtype))
    if static["maximize"]:
        grad = -grad
    if static["coupled"]:
        grad = grad + k["decay"] * param
    return grad, param


def prodigy_sums(
    param: Tensor, grad: Tensor, states: list[Tensor], k: Mapping[str, Any], static: Mapping[str, Hashable]
) -> list[Tensor]:
    """Prodigy's pass over one tensor (:class:`GroupPass`): ``<u, p0 - theta>`` and ``sum |s|``
    of the updated ``s``, reading ``g, p0, theta, s`` once and writing ``s``."""
    s, p0 = states
    u, theta = direction(param, grad, k, static)
    product = (u * (p0 - theta)).sum()
    updated = s * k["beta3"] + u * k["s_weight"]
    s.copy_(updated)
    return [product, updated.abs().sum()]


def dadapt_sums(
    param: Tensor, grad: Tensor, states: list[Tensor], k: Mapping[str, Any], static: Mapping[str, Hashable]
) -> list[Tensor]:
    """D-Adaptation Adam's pass over one tensor (:class:`GroupPass`): ``<u, s / (sqrt(v) + eps)>``
    with the old ``s`` and ``v``, and ``sum |s|`` of the updated ``s``; it reads ``g, s, v`` and
    writes ``s`` (compiled in two loops: the inner product, then ``s`` and its norm)."""
    s, second = states
    _, product, updated = dadapt_estimate(param, grad, s, second, k, static)
    return [product, updated.abs().sum()]


def dadapt_estimate(
    param: Tensor, grad: Tensor, s: Tensor, second: Tensor, k: Mapping[str, Any], static: Mapping[str, Hashable]
) -> tuple[Tensor, Tensor, Tensor]:
    """D-Adaptation Adam's estimate over one tensor, in the compiled pass: the direction ``u``,
    ``<u, s / (sqrt(v) + eps)>`` with the old ``s`` and ``v``, and the new ``s``, written in place."""
    u, _ = direction(param, grad, k, static)
    product = (u * (s / (second.sqrt() + k["eps"]))).sum()
    updated = s * k["root"] + u * k["s_weight"]
    s.copy_(updated)
    return u, product, updated


def moment_step(ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
    """The moments' update and the parameter's step from them (both estimates' Adam part)."""
    exp_avgs, exp_avg_sqs = k.state("exp_avg"), k.state("exp_avg_sq")
    ops.mul_(exp_avgs, k.scalar("m_decay"))
    ops.add_(exp_avgs, updates, k.scalar("m_weight"))
    ops.mul_(exp_avg_sqs, k.scalar("v_decay"))
    ops.addcmul_(exp_avg_sqs, updates, updates, k.scalar("v_weight"))
    denominators = ops.sqrt(exp_avg_sqs)
    ops.add_scalar_(denominators, k.scalar("eps"))
    out = ops.div(exp_avgs, denominators)
    ops.mul_(out, k.scalar("step"))
    if k.static("decoupled_decay"):
        ops.add_(out, k.params, k.scalar("decay_step"))
    return out


STEP_NUMBERS = ("m_decay", "m_weight", "v_decay", "v_weight", "eps", "step", "decay_step")
"""This step's numbers of :func:`moment_step`, as :meth:`_GroupEstimate.prepare` hands them on."""


def dadapt_step(
    param: Tensor, grad: Tensor, states: list[Tensor], k: Mapping[str, Any], static: Mapping[str, Hashable]
) -> list[Tensor]:
    """D-Adaptation Adam's whole step over one tensor (:class:`GroupPass` with ``covers``):
    ``<u, s / (sqrt(v) + eps)>`` with the old ``s`` and ``v``, ``s`` updated, and the moments and
    the parameter updated as the chain's step does (:func:`moment_step`, with the old ``d``). It
    reads ``g, m, v, s, theta`` and writes ``m, v, s, theta`` in one compiled loop; ``sum |s|``
    of the new ``s`` comes after it (the pass's ``norms``; docs/floors.md)."""
    s, second, first = states
    u, product, _ = dadapt_estimate(param, grad, s, second, k, static)
    numbers = Prepared({name: [k[name]] for name in STEP_NUMBERS}, {"decoupled_decay": static["decoupled_decay"]})
    kernel = Kernel([param], {"exp_avg": [first], "exp_avg_sq": [second]}, [numbers])
    LOOP.add_([param], moment_step(LOOP, [u], kernel))
    return [product]


def dadapt_chain(transforms: Sequence[Transform]) -> bool:
    """Whether a bucket's chain is D-Adaptation Adam alone, after coupled weight decay at most:
    the chain :func:`dadapt_step` is the whole step of."""
    if len(transforms) != 2:
        return False
    decay, last = transforms
    return (
        type(last) is ScaleByDAdaptAdam
        and not last.settings()
        and type(decay) is AddDecayedWeights
        and decay.settings() == ["coupled"]
    )


def tensor_sums(
    transform: Transform,
    ctx: StepContext,
    spec: GroupPass,
    eager: Callable[[StepContext], list[Tensor]],
) -> list[Tensor]:
    """Each tensor's partial sums (a 1-d tensor each, in order): by the compiled pass ``spec``
    where the fused path takes the tensor (:attr:`StepContext.compiled_sums`), by ``eager`` over
    a context of the other tensors."""
    done = ctx.compiled_sums(transform, spec) if ctx.compiled_sums is not None else {}
    if not done:
        return eager(ctx)
    rest = [i for i in range(len(ctx.params)) if i not in done]
    computed = dict(zip(rest, eager(ctx.subset(rest)))) if rest else {}
    return [done[i] if i in done else computed[i] for i in range(len(ctx.params))]


class _GroupEstimate(Transform):
    """Shared parts: hyperparameters every estimate reads, and this step's numbers by group."""

    elementwise = False  # the estimate spans the group
    needs_shape = False
    state_keys: ClassVar[tuple[str, ...]] = ("s", "exp_avg", "exp_avg_sq")

    def __init__(self) -> None:
        self._numbers: dict[int, dict[str, Any]] = {}
        """This step's numbers per group (``id``), from :meth:`prepare_group` for :meth:`prepare`."""

    def numbers(self, group: dict[str, Any]) -> dict[str, Any]:
        return self._numbers[id(group)]

    @staticmethod
    def init_moments(ctx: StepContext) -> None:
        ctx.init_state("s", zeros)
        ctx.init_state("exp_avg", zeros)
        ctx.init_state("exp_avg_sq", zeros)

    def prepare(self, ctx: StepContext) -> Prepared:
        n = self.numbers(ctx.group)
        return Prepared(
            scalars={
                key: n[key] for key in ("m_decay", "m_weight", "v_decay", "v_weight", "eps", "step", "decay_step")
            },
            static={"decoupled_decay": n["decoupled_decay"]},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        return moment_step(ops, updates, k)


def _bias_correction(group: dict[str, Any], beta1: float, beta2: float, k: int) -> float:
    if not group.get("use_bias_correction", False):
        return 1.0
    return math.sqrt(1.0 - beta2 ** (k + 1)) / (1.0 - beta1 ** (k + 1))


class ScaleByProdigy(_GroupEstimate):
    """Prodigy (Mishchenko & Defazio 2023, https://arxiv.org/abs/2306.06101), the whole step.

    Per group, with ``d`` the current estimate, ``dlr = d lr c_k`` (``c_k`` Adam's bias
    corrections with ``use_bias_correction``, else 1) and ``u`` the direction (gradient plus
    coupled decay):

        r <- beta3 r + (d / d0) dlr <u, p0 - theta>        (summed over the group; p0: start)
        s <- beta3 s + (d / d0) dlr u                      ((d / d0) d u with safeguard_warmup)
        d_hat = d_coef r / sum |s|;  d <- max(d, d_hat) at the first growth;
        d_max <- max(d_max, d_hat);  d <- min(d_max, d growth_rate)
        m <- beta1 m + d_old (1 - beta1) u;  v <- beta2 v + d_old^2 (1 - beta2) u^2
        theta <- theta - dlr (m / (sqrt(v) + d eps) + weight_decay theta [decoupled])

    ``beta3`` defaults to ``sqrt(beta2)``. The group keeps ``d``, ``d_max``, ``d_numerator``
    (r), ``d_denom``, ``d_hat`` and ``k`` (the prodigyopt package's names).
    """

    group_keys = ("d", "d_max", "d_numerator", "d_denom", "d_hat", "k")
    state_keys = ("s", "p0", "exp_avg", "exp_avg_sq")
    hyperparameters = {
        "lr": Hyper(1.0, NONNEGATIVE, "multiplier of the estimated learning rate"),
        "betas": BETAS,
        "beta3": Hyper(None, Optional(UNIT), "decay of the estimate's sums (None: sqrt(betas[1]))"),
        "eps": Hyper(1e-8, POSITIVE, "added to the denominator (times d)"),
        "weight_decay": WEIGHT_DECAY,
        "decoupled_weight_decay": DECOUPLED,
        "use_bias_correction": BIAS_CORRECTION,
        "safeguard_warmup": Hyper(False, Flag(), "leave lr out of the sum s (steadier during a warm-up)"),
        "d0": D0,
        "d_coef": Hyper(1.0, POSITIVE, "multiplier of the estimate d_hat"),
        "growth_rate": GROWTH_RATE,
    }

    def prepare_group(self, group: dict[str, Any], contexts: list[StepContext]) -> None:
        beta1, beta2 = (float(b) for b in group["betas"])
        beta3 = group.get("beta3")
        beta3 = math.sqrt(beta2) if beta3 is None else float(beta3)
        d0 = float(group["d0"])
        k = int(group.get("k", 0))
        d = float(group.get("d", d0))
        d_max = float(group.get("d_max", d0))
        lr = float(group["lr"])
        dlr = d * lr * _bias_correction(group, beta1, beta2, k)
        decay = float(group["weight_decay"])
        coupled = 0.0 if group["decoupled_weight_decay"] else decay
        s_weight = (d / d0) * (d if group["safeguard_warmup"] else dlr)
        maximize = bool(group.get("maximize", False))
        if lr > 0:
            weights = {
                "step": dlr,
                "s_weight": s_weight,
                "m_weight": d * (1.0 - beta1),
                "v_weight": d * d * (1.0 - beta2),
            }
            check_estimate(self, d, {**weights, "eps * d": d * float(group["eps"])}, contexts)

        def eager(ctx: StepContext) -> list[Tensor]:
            grads = gradients(ctx, maximize, coupled)
            s, p0 = ctx.state("s"), ctx.state("p0")
            displacement = torch._foreach_sub(p0, math_params(ctx))
            products = [dot(g, x) for g, x in zip(grads, displacement)]
            torch._foreach_mul_(s, beta3)
            torch._foreach_add_(s, grads, alpha=s_weight)
            return [torch.stack([p, n]) for p, n in zip(products, l1_norms(s))]

        sums = []
        for ctx in contexts:
            self.init_moments(ctx)
            ctx.init_state("p0", slow_copy)
            if lr <= 0:
                continue
            spec = GroupPass(
                prodigy_sums,
                ("s", "p0"),
                {"beta3": beta3, "s_weight": s_weight, "decay": coupled},
                {"maximize": maximize, "coupled": coupled != 0, "compute_dtype": ctx.state_dtype},
            )
            sums.append(tensor_sums(self, ctx, spec, eager))
        delta, denominator = 0.0, 0.0
        for product, l1 in group_sums(contexts, sums) if lr > 0 else []:
            delta += (d / d0) * dlr * product
            denominator += l1
        moving = denominator != 0 and lr > 0
        if moving:
            numerator = float(group.get("d_numerator", 0.0)) * beta3 + delta
            d_hat = float(group["d_coef"]) * numerator / denominator
            d_new = max(d, d_hat) if d == d0 else d
            d_max = max(d_max, d_hat)
            d_new = min(d_max, d_new * float(group["growth_rate"]))
            group.update(d=d_new, d_max=d_max, d_numerator=numerator, d_denom=denominator, d_hat=d_hat, k=k + 1)
        else:
            d_new = d
        updating = lr > 0
        self._numbers[id(group)] = {
            "m_decay": beta1 if updating else 1.0,
            "m_weight": d * (1.0 - beta1) if updating else 0.0,
            "v_decay": beta2 if updating else 1.0,
            "v_weight": d * d * (1.0 - beta2) if updating else 0.0,
            "eps": d_new * float(group["eps"]),
            "step": -dlr if moving else 0.0,
            "decay_step": -decay * dlr if moving and coupled == 0.0 else 0.0,
            "decoupled_decay": coupled == 0.0 and decay != 0,
        }


class ScaleByDAdaptAdam(_GroupEstimate):
    """D-Adaptation Adam (Defazio & Mishchenko 2023, https://arxiv.org/abs/2301.07733), the whole step.

    Per group, with ``d`` the current estimate, ``dlr = d lr c_k``, ``b = sqrt(beta2)`` and
    ``u`` the direction (gradient plus coupled decay):

        r <- b r + (1 - b) dlr <u, s / (sqrt(v) + eps)>     (old s and v; summed over the group)
        m <- beta1 m + dlr (1 - beta1) u;  v <- beta2 v + (1 - beta2) u^2
        s <- b s + dlr (1 - b) u
        d_hat = r / ((1 - b) sum |s|);  d <- max(d, min(d_hat, d growth_rate))
        theta <- theta - m / (sqrt(v) + eps) - dlr weight_decay theta [decoupled]

    The learning rate lives in ``m``, so the step itself is not scaled by it. The group keeps
    ``d``, ``numerator_weighted`` (r) and ``k`` (the dadaptation package's names).

    The step uses only the old ``d``; the new one scales the next step. So on the fused path,
    once a step has found ``sum |s|`` nonzero (``s`` is then not all zero), the following steps
    with ``lr > 0`` take one compiled pass per tensor that updates ``m, v, s`` and the parameter
    and takes the inner product (:func:`dadapt_step`; ``sum |s|`` follows it), and ``d`` is
    updated from the sums after the group stepped. The first step, a step after one whose ``sum |s|`` was 0, a step with ``lr = 0``
    and half-precision parameters take the sums first and then the step, as the authors'
    package, which moves no parameter where ``sum |s|`` comes out 0. One case differs: with
    ``s`` not all zero, ``sum |s|`` can come out 0 only where the gradient cancels ``s``
    exactly, ``u = -b s / (dlr (1 - b))`` at every element; the one-pass step has then already
    moved the parameters, where the package leaves them (``d`` is kept in both).
    """

    group_keys = ("d", "numerator_weighted", "k")
    hyperparameters = {
        "lr": Hyper(1.0, NONNEGATIVE, "multiplier of the estimated learning rate"),
        "betas": BETAS,
        "eps": Hyper(1e-8, POSITIVE, "added to the denominator"),
        "weight_decay": WEIGHT_DECAY,
        "decoupled_weight_decay": DECOUPLED,
        "use_bias_correction": BIAS_CORRECTION,
        "d0": D0,
        "growth_rate": GROWTH_RATE,
    }

    def __init__(self) -> None:
        super().__init__()
        self._moving_at: dict[int, int] = {}
        """Per group (``id``): its ``k`` after its last step with ``lr > 0``, where that step's
        ``sum |s|`` was not 0 (``s`` is then not all zero; the one-pass route may be taken)."""

    def prepare_group(self, group: dict[str, Any], contexts: list[StepContext]) -> None:
        beta1, beta2 = (float(b) for b in group["betas"])
        root = beta2**0.5
        k = int(group.get("k", 0))
        d = float(group.get("d", group["d0"]))
        lr = float(group["lr"])
        dlr = d * lr * _bias_correction(group, beta1, beta2, k)
        eps = float(group["eps"])
        decay = float(group["weight_decay"])
        coupled = 0.0 if group["decoupled_weight_decay"] else decay
        maximize = bool(group.get("maximize", False))
        s_weight = dlr * (1.0 - root)
        if lr > 0:
            weights = {"s_weight": s_weight, "m_weight": dlr * (1.0 - beta1), "decay * dlr": decay * dlr}
            check_estimate(self, d, weights, contexts)
        one_pass = (
            lr > 0
            and self._moving_at.get(id(group)) == k
            and any(ctx.compiled_sums is not None and ctx.state_dtype is None for ctx in contexts)
        )

        def eager(ctx: StepContext) -> list[Tensor]:
            grads = gradients(ctx, maximize, coupled)
            s, second = ctx.state("s"), ctx.state("exp_avg_sq")
            denominators: tuple[Tensor, ...] | list[Tensor] = torch._foreach_sqrt(second) if second else []
            torch._foreach_add_(denominators, eps)
            scaled = torch._foreach_div(s, denominators) if s else []
            products = [dot(g, x) for g, x in zip(grads, scaled)]
            torch._foreach_mul_(s, root)
            torch._foreach_add_(s, grads, alpha=s_weight)
            return [torch.stack([p, n]) for p, n in zip(products, l1_norms(s))]

        def numbers(moving: bool) -> dict[str, Any]:
            updating = lr > 0
            return {
                "m_decay": beta1 if updating else 1.0,
                "m_weight": dlr * (1.0 - beta1) if updating else 0.0,
                "v_decay": beta2 if updating else 1.0,
                "v_weight": 1.0 - beta2 if updating else 0.0,
                "eps": eps,
                "step": -1.0 if moving else 0.0,
                "decay_step": -decay * dlr if moving and coupled == 0.0 else 0.0,
                "decoupled_decay": coupled == 0.0 and decay != 0,
            }

        sums_scalars = {"root": root, "s_weight": s_weight, "eps": eps, "decay": coupled}
        step_numbers = numbers(True)  # the one-pass route: the step is taken before the sums are known
        sums = []
        for ctx in contexts:
            self.init_moments(ctx)
            if lr <= 0:
                continue
            static: dict[str, Hashable] = {
                "maximize": maximize,
                "coupled": coupled != 0,
                "compute_dtype": ctx.state_dtype,
            }
            if one_pass and ctx.state_dtype is None:
                spec = GroupPass(
                    dadapt_step,
                    ("s", "exp_avg_sq", "exp_avg"),
                    {**sums_scalars, **{name: step_numbers[name] for name in STEP_NUMBERS}},
                    {**static, "decoupled_decay": step_numbers["decoupled_decay"]},
                    covers=dadapt_chain,
                    norms=("s",),
                )
            else:
                spec = GroupPass(dadapt_sums, ("s", "exp_avg_sq"), sums_scalars, static)
            sums.append(tensor_sums(self, ctx, spec, eager))
        accumulated, l1_total = 0.0, 0.0
        for product, l1 in group_sums(contexts, sums) if lr > 0 else []:
            accumulated += dlr * product
            l1_total += l1
        numerator = root * float(group.get("numerator_weighted", 0.0)) + (1.0 - root) * accumulated
        moving = l1_total != 0 and lr > 0
        if moving:
            d_hat = numerator / ((1.0 - root) * l1_total)
            d_new = max(d, min(d_hat, d * float(group["growth_rate"])))
            group.update(d=d_new, numerator_weighted=numerator, k=k + 1)
            self._moving_at[id(group)] = k + 1
        elif lr > 0:
            self._moving_at.pop(id(group), None)
        self._numbers[id(group)] = step_numbers if one_pass else numbers(moving)
