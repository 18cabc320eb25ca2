"""The generic suite: every row of the optimizer table keeps torch.optim's contract."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from optimizer_table import CASES, case_config_ids

PAIRS = case_config_ids()
ALL = pytest.mark.parametrize("case,config", [p for p, _ in PAIRS], ids=[i for _, i in PAIRS])
BY_CASE = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])


def make_params(seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(4, 3, generator=g, dtype=dtype).requires_grad_(),
        torch.randn(3, generator=g, dtype=dtype).requires_grad_(),
        torch.zeros(0, 2, dtype=dtype).requires_grad_(),
    ]


def fake_grads(params, step: int):
    """Deterministic bounded gradients that vary with the step."""
    for i, p in enumerate(params):
        p.grad = torch.sin(1.7 * p.detach() + step + i) + 0.05 * p.detach()


def snapshot(optimizer, params):
    return [p.detach().clone() for p in params], copy.deepcopy(optimizer.state_dict())


def assert_same_tensors(a, b):
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a["state"]:
        sa, sb = a["state"][key], b["state"][key]
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.equal(torch.as_tensor(sa[name]), torch.as_tensor(sb[name])), name


def least_squares(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    w_true = torch.randn(5, 1, generator=g, dtype=torch.float64)
    y = x @ w_true
    # torch.nn.Linear's layout, (out, in): per-output-row transforms (gradient centralisation) see a row
    w = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    return (lambda: ((x @ w.T + b - y) ** 2).mean()), [w, b]


@ALL
def test_loss_goes_down(case, config):
    loss_fn, params = least_squares()
    opt = case.create(params, **case.with_lr(config, case.descent_lr))
    initial = loss_fn().item()
    for _ in range(50):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < 0.9 * initial


@BY_CASE
def test_errors_name_parameter_and_value(case):
    for bad, fragment in case.errors:
        params = make_params()
        with pytest.raises(ValueError) as info:
            case.create(params, **{**case.configs[0], **bad})
        message = str(info.value)
        assert fragment in message, message
        assert case.cls.__name__ in message, message


@BY_CASE
def test_unknown_keyword_suggests_closest(case):
    with pytest.raises(TypeError, match="Did you mean 'lr'"):
        case.create(make_params(), **{**case.configs[0], "lrr": 0.1})


@BY_CASE
def test_bad_param_group_is_rejected_and_not_added(case):
    params = make_params()
    opt = case.create(params[:1], **case.configs[0])
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": params[1:2], "lr": -3.0})
    assert len(opt.param_groups) == 1


@ALL
def test_state_dict_round_trip_through_torch_save_is_bit_identical(case, config):
    params = make_params()
    opt = case.create(params, **config)
    for step in range(5):
        fake_grads(params, step)
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)

    twins = [p.detach().clone().requires_grad_() for p in params]
    twin_opt = case.create(twins, **config)
    twin_opt.load_state_dict(loaded)
    for step in range(5, 12):
        fake_grads(params, step)
        fake_grads(twins, step)
        opt.step()
        twin_opt.step()
    assert_same_tensors(params, twins)
    assert_same_state(opt.state_dict(), twin_opt.state_dict())


@ALL
def test_per_group_settings_equal_separate_optimizers(case, config):
    params = make_params()
    config = {**case.with_lr(config, 0.02), "lr": 0.02}
    opt = case.create([{"params": params[:1], "lr": 0.003}, {"params": params[1:]}], **config)
    singles = [p.detach().clone().requires_grad_() for p in params]
    opt_a = case.create(singles[:1], **{**config, "lr": 0.003})
    opt_b = case.create(singles[1:], **config)
    for step in range(6):
        fake_grads(params, step)
        fake_grads(singles, step)
        opt.step()
        opt_a.step()
        opt_b.step()
    assert_same_tensors(params, singles)


@ALL
def test_none_and_zero_gradients(case, config):
    params = make_params()
    opt = case.create(params, **config)
    frozen = params[1].detach().clone()
    for step in range(4):
        fake_grads(params, step)
        params[1].grad = None
        opt.step()
    assert torch.equal(params[1], frozen)
    assert len(opt.state[params[1]]) == 0
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    assert all(torch.isfinite(p).all() for p in params)


@ALL
def test_zero_size_parameters_are_stepped(case, config):
    empty = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    opt = case.create([empty], **config)
    empty.grad = torch.zeros_like(empty)
    opt.step()
    assert empty.shape == (0, 3)


@ALL
def test_lr_scheduler_controls_the_step(case, config):
    """lr set to 0 by a scheduler stops the updates; where lr is only the initial step size, it does not."""
    params = make_params()
    opt = case.create(params, **case.with_lr(config, case.descent_lr))
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 if epoch < 3 else 0.0)
    step = 0
    for step in range(3):
        fake_grads(params, step)
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == 0.0
    if case.sync_period:
        # with lr = 0 the fast weights still return to the slow ones at the next synchronisation
        period = config.get("k", case.sync_period)
        while (step + 1) % period:
            step += 1
            fake_grads(params, step)
            opt.step()
            scheduler.step()
    before = [p.detach().clone() for p in params]
    last = step
    for step in range(last + 1, last + 4):
        fake_grads(params, step)
        opt.step()
        scheduler.step()
    if case.stops_at_zero_lr(config):
        assert_same_tensors(params, before)
    else:
        assert not torch.equal(params[0], before[0])


@ALL
def test_deepcopy_is_independent_and_steps_on(case, config):
    params = make_params()
    opt = case.create(params, **config)
    fake_grads(params, 0)
    opt.step()
    twin = copy.deepcopy(opt)
    saved = copy.deepcopy(twin.state_dict())
    fake_grads(params, 1)
    opt.step()
    assert_same_state(twin.state_dict(), saved)
    # the copy is a working optimizer over its own copies of the parameters
    twin_params = [p for group in twin.param_groups for p in group["params"]]
    fake_grads(twin_params, 1)
    twin.step()
    assert_same_tensors(twin_params, params)


@ALL
def test_pickled_optimizer_steps_on(case, config):
    import pickle

    params = make_params()
    opt = case.create(params, **config)
    fake_grads(params, 0)
    opt.step()
    restored = pickle.loads(pickle.dumps(opt))
    restored_params = [p for group in restored.param_groups for p in group["params"]]
    fake_grads(params, 1)
    fake_grads(restored_params, 1)
    opt.step()
    restored.step()
    assert_same_tensors(restored_params, params)


@ALL
def test_maximize_equals_minimising_the_negation(case, config):
    up = make_params()
    down = make_params()
    opt_up = case.create(up, **{**config, "maximize": True})
    opt_down = case.create(down, **config)
    for step in range(6):
        fake_grads(up, step)
        fake_grads(down, step)
        for p in down:
            p.grad.neg_()
        opt_up.step()
        opt_down.step()
    assert_same_tensors(up, down)


@ALL
def test_closure_is_called_once_and_its_loss_returned(case, config):
    loss_fn, params = least_squares()
    opt = case.create(params, **config)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert len(calls) == 1
    assert torch.is_tensor(loss) and loss.item() > 0


@ALL
def test_per_tensor_path_equals_multi_tensor_path(case, config):
    many = make_params()
    one = make_params()
    opt_many = case.create(many, **{**config, "foreach": True})
    opt_one = case.create(one, **{**config, "foreach": False})
    for step in range(8):
        fake_grads(many, step)
        fake_grads(one, step)
        opt_many.step()
        opt_one.step()
    for a, b in zip(many, one):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


@ALL
def test_nonfinite_skip_leaves_everything_bit_identical(case, config):
    params = make_params()
    opt = case.create(params, **{**config, "nonfinite": "skip"})
    for step in range(3):
        fake_grads(params, step)
        opt.step()
    before_params, before_state = snapshot(opt, params)
    fake_grads(params, 3)
    params[1].grad[0] = float("nan")
    opt.step()
    assert_same_tensors(params, before_params)
    assert_same_state(opt.state_dict(), before_state)
    assert opt.param_groups[0]["nonfinite_skips"] == 1
    fake_grads(params, 4)
    opt.step()
    assert not torch.equal(params[0], before_params[0])


@ALL
def test_nonfinite_raise_names_parameter_and_step_and_changes_nothing(case, config):
    params = make_params()
    opt = case.create(params, **{**config, "nonfinite": "raise"})
    for step in range(2):
        fake_grads(params, step)
        opt.step()
    before_params, before_state = snapshot(opt, params)
    fake_grads(params, 2)
    params[1].grad[2] = float("inf")
    with pytest.raises(FloatingPointError, match=r"\['params'\]\[1\].*step 3"):
        opt.step()
    assert_same_tensors(params, before_params)
    assert_same_state(opt.state_dict(), before_state)


@ALL
def test_nonfinite_ignore_updates_like_torch(case, config):
    """A NaN gradient goes into the update, as in the reference (NaN, except where its sign is taken)."""

    def nan_step(params, optimizer):
        fake_grads(params, 0)
        params[0].grad[0, 0] = float("nan")
        optimizer.step()

    params = make_params()
    nan_step(params, case.create(params, **config))
    if case.reference is None:
        assert torch.isnan(params[0][0, 0])
        return
    theirs = make_params()
    nan_step(theirs, case.reference(theirs, **config))
    for ours, reference in zip(params, theirs):
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=0, equal_nan=True)


def test_nonfinite_raise_uses_parameter_names_when_given():
    model = torch.nn.Linear(3, 2)
    opt = CASES[0].create(model.named_parameters(), lr=0.1, nonfinite="raise")
    model.weight.grad = torch.full_like(model.weight, float("nan"))
    model.bias.grad = torch.zeros_like(model.bias)
    with pytest.raises(FloatingPointError, match="'weight'"):
        opt.step()


@pytest.mark.parametrize("case", [c for c in CASES if not c.sparse], ids=[c.name for c in CASES if not c.sparse])
def test_sparse_gradients_get_a_clear_error(case):
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    opt = case.create(embedding.parameters(), **case.configs[0])
    embedding(torch.tensor([1, 2])).sum().backward()
    before = embedding.weight.detach().clone()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()
    assert torch.equal(embedding.weight, before)


@pytest.mark.parametrize("case", [c for c in CASES if c.complex], ids=[c.name for c in CASES if c.complex])
def test_complex_parameter_equals_its_real_view(case):
    z = torch.randn(5, dtype=torch.complex128, generator=torch.Generator().manual_seed(1)).requires_grad_()
    r = torch.view_as_real(z.detach()).clone().requires_grad_()
    opt_z = case.create([z], **case.configs[-1])
    opt_r = case.create([r], **case.configs[-1])
    for step in range(6):
        g = torch.sin(torch.view_as_real(z.detach()) * 1.3 + step)
        z.grad = torch.view_as_complex(g.clone())
        r.grad = g.clone()
        opt_z.step()
        opt_r.step()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=1e-12, atol=0)


SPARSE = [c for c in CASES if c.sparse]


@pytest.mark.parametrize("case", SPARSE, ids=[c.name for c in SPARSE])
def test_sparse_gradients_move_only_the_rows_present(case):
    embedding = torch.nn.Embedding(10, 3, sparse=True).double()
    opt = case.create(embedding.parameters(), **case.configs[0])
    before = embedding.weight.detach().clone()
    for step in range(3):
        opt.zero_grad()
        (embedding(torch.tensor([1, 4, 4])) * (step + 1.0)).sum().backward()
        opt.step()
    moved = (embedding.weight != before).any(dim=1)
    assert moved.tolist() == [i in (1, 4) for i in range(10)]
    for value in opt.state[embedding.weight].values():
        if value.dim() == 2:
            assert value[[0, 2, 3, 5]].abs().max() == 0


@pytest.mark.parametrize("case", SPARSE, ids=[c.name for c in SPARSE])
def test_sparse_nonfinite_gradient_is_caught(case):
    embedding = torch.nn.Embedding(10, 3, sparse=True).double()
    opt = case.create(embedding.parameters(), **{**case.configs[0], "nonfinite": "raise"})
    (embedding(torch.tensor([2])) * float("inf")).sum().backward()
    before = embedding.weight.detach().clone()
    with pytest.raises(FloatingPointError, match="non-finite gradient"):
        opt.step()
    assert torch.equal(embedding.weight, before)
