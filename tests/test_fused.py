"""The fused (compiled) path equals the eager path, for every row of the optimizer table.

Compilation is slow, so each optimizer is compiled in one configuration (its last, the one
with the most features on) per dtype, with small chunks; one test runs the production chunk.
"""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
from optimizer_table import CASES

import optarena
from optarena.optim import chunks, compiled, planning, toolchain

PRODUCTION_CHUNK = chunks.CHUNK
FUSABLE = [c for c in CASES if c.fusable]
BY_CASE = pytest.mark.parametrize("case", FUSABLE, ids=[c.name for c in FUSABLE])
SHAPES = [(6, 4), (5,), (2, 3, 2), (3, 2), (1,)]
"""Several ranks, and a one-element tensor, which takes the eager step inside a fused group."""


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 2)


def make_params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_() for shape in SHAPES]


def set_grads(params, step):
    for i, p in enumerate(params):
        p.grad = (torch.sin(1.3 * p.detach().double() + 0.7 * step + i) + 0.1 * p.detach().double()).to(p.dtype)
        if i == 1 and step % 4 == 3:
            p.grad = None


def run(case, config, params, steps, fused_flag, start=0, opt=None):
    opt = opt or case.create(params, **{**config, "fused": fused_flag})
    for step in range(start, start + steps):
        set_grads(params, step)
        opt.step()
    return opt


def relative_error(a, b):
    worst = 0.0
    for x, y in zip(a, b):
        if x.numel():
            scale = y.detach().double().abs().max().clamp_min(1e-30)
            worst = max(worst, ((x.detach().double() - y.detach().double()).abs().max() / scale).item())
    return worst


@BY_CASE
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-6)], ids=["f64", "f32"])
def test_fused_equals_eager(case, dtype, tolerance):
    config = case.configs[-1]
    ours, theirs = make_params(dtype), make_params(dtype)
    run(case, config, ours, 30, True)
    run(case, config, theirs, 30, False)
    assert relative_error(ours, theirs) <= tolerance


@BY_CASE
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_a_step_leaves_the_gradients_unchanged(case, fused):
    """The contract behind ownership (transforms/ops.py, Fresh): no transform writes into the
    gradients it was given, on either backend, with maximize or without."""
    for maximize in (False, True):
        params = make_params(torch.float64)
        opt = case.create(params, **{**case.configs[-1], "fused": fused, "maximize": maximize})
        for step in range(4):
            set_grads(params, step)
            before = [None if p.grad is None else p.grad.clone() for p in params]
            opt.step()
            for p, grad in zip(params, before):
                assert (p.grad is None) == (grad is None)
                if grad is not None:
                    assert torch.equal(p.grad, grad)


@BY_CASE
def test_state_dict_moves_between_fused_and_eager(case):
    config = case.configs[-1]
    reference = make_params(torch.float64)
    run(case, config, reference, 16, False)

    fused_params = make_params(torch.float64)
    opt = run(case, config, fused_params, 8, True)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    eager = case.create(fused_params, **{**config, "fused": False})
    eager.load_state_dict(torch.load(buffer, weights_only=True))
    run(case, config, fused_params, 8, False, start=8, opt=eager)
    assert relative_error(fused_params, reference) <= 1e-12

    eager_params = make_params(torch.float64)
    opt = run(case, config, eager_params, 8, False)
    again = case.create(eager_params, **{**config, "fused": True})
    again.load_state_dict(copy.deepcopy(opt.state_dict()))
    run(case, config, eager_params, 8, True, start=8, opt=again)
    assert relative_error(eager_params, reference) <= 1e-12


def test_scheduler_changing_lr_every_step_does_not_recompile():
    params = make_params(torch.float32)
    opt = optarena.Adam(params, lr=1e-2, fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    set_grads(params, 0)
    opt.step()
    graphs = len(compiled._compiled)
    torch._dynamo.utils.counters.clear()
    for step in range(1, 8):
        set_grads(params, step)
        opt.step()
        scheduler.step()
    assert len(compiled._compiled) == graphs
    assert torch._dynamo.utils.counters["stats"]["calls_captured"] == 0, "a step recompiled"


def test_production_chunk_size_compiles_once_for_two_models(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", PRODUCTION_CHUNK)
    first = [torch.randn(s, requires_grad=True) for s in [(9, 7), (13,), (4, 4), (8, 3)]]
    second = [torch.randn(s, requires_grad=True) for s in [(31,), (2, 50), (6, 6)] * 5]
    torch._dynamo.utils.counters.clear()
    for params in (first, second):
        opt = optarena.AdamW(params, fused=True)
        eager = optarena.AdamW([p.detach().clone().requires_grad_() for p in params], fused=False)
        for step in range(3):
            set_grads(params, step)
            set_grads(eager.param_groups[0]["params"], step)
            opt.step()
            eager.step()
        assert relative_error(params, eager.param_groups[0]["params"]) <= 1e-6
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 1


def test_a_graph_traced_for_small_matrices_serves_large_ones(monkeypatch):
    """Adafactor's column means split the rows into blocks of 32: the trace must not keep the
    block count of the first model (none for 6 rows, one for 40) for the next one."""
    monkeypatch.setattr(toolchain, "_warned", set())
    models = [[(40, 3), (6, 4)], [(70, 5), (100, 3), (33, 2), (8, 8)]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed compilation warns and runs eagerly
        for shapes in models:
            params = [torch.randn(s, requires_grad=True) for s in shapes]
            twins = [p.detach().clone().requires_grad_() for p in params]
            opt, eager = optarena.Adafactor(params, fused=True), optarena.Adafactor(twins, fused=False)
            for step in range(3):
                set_grads(params, step)
                set_grads(twins, step)
                opt.step()
                eager.step()
            assert relative_error(params, twins) <= 1e-6


def test_a_float_construction_setting_is_traced_once():
    """A float the trace meets (a transform's setting, in the cache key) is a constant: Dynamo
    once traced it as a symbol, had to specialise it, and traced the whole chain again."""
    t = optarena.transforms
    chain = [t.ScaleByAdam(), t.ScaleByTrustRatio(param_norm_range=(0.0, 7.25)), t.ScaleByLearningRate()]
    params = make_params(torch.float32)[:4]
    twins = [p.detach().clone().requires_grad_() for p in params]
    opt = optarena.Chain(params, chain, fused=True)
    eager = optarena.Chain(twins, chain, fused=False)
    torch._dynamo.utils.counters.clear()
    for step in range(3):
        set_grads(params, step)
        set_grads(twins, step)
        opt.step()
        eager.step()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert relative_error(params, twins) <= 1e-6


@pytest.mark.parametrize(
    "name, share, graphs",
    [("ranger", planning.MINOR_RANK_SHARE, 1), ("ranger", 0.0, 2), ("adafactor", planning.MINOR_RANK_SHARE, 2)],
    ids=["ranger-default", "ranger-every-rank", "adafactor-own-bucket"],
)
def test_a_minor_rank_of_a_shaped_chain_steps_eagerly(monkeypatch, name, share, graphs):
    """Two biases (21 of 3,221 elements) beside matrices. In Ranger's bucket they take the eager
    step instead of a graph of their own (with a share of 0, each rank compiles); Adafactor
    puts them in a bucket of their own, which compiles."""
    monkeypatch.setattr(planning, "MINOR_RANK_SHARE", share)
    monkeypatch.setattr(compiled, "_compiled", {})
    shapes = [(40, 48), (11,), (30, 43), (10,)]
    params = [torch.randn(s, generator=torch.Generator().manual_seed(i)).requires_grad_() for i, s in enumerate(shapes)]
    twins = [p.detach().clone().requires_grad_() for p in params]
    opt, eager = optarena.create(name, params, fused=True), optarena.create(name, twins, fused=False)
    for step in range(4):
        set_grads(params, step)
        set_grads(twins, step)
        opt.step()
        eager.step()
    assert len(compiled._compiled) == graphs
    assert relative_error(params, twins) <= 1e-6


def test_replaced_parameter_and_state_tensors_are_seen_by_the_next_fused_step():
    params, twins = make_params(torch.float32), make_params(torch.float32)
    opt = optarena.Adam(params, lr=0.1, fused=True)
    eager = optarena.Adam(twins, lr=0.1, fused=False)
    for step in range(3):
        if step == 2:  # new memory for a parameter and for a state tensor, between two steps
            for model, optimizer in ((params, opt), (twins, eager)):
                model[0].data = model[0].data * 0.5
                optimizer.state[model[2]]["exp_avg"] = optimizer.state[model[2]]["exp_avg"] + 1.0
        set_grads(params, step)
        set_grads(twins, step)
        opt.step()
        eager.step()
    assert relative_error(params, twins) <= 1e-6
    assert relative_error([opt.state[params[2]]["exp_avg"]], [eager.state[twins[2]]["exp_avg"]]) <= 1e-6


def test_a_non_contiguous_state_tensor_sends_its_bucket_to_the_eager_step():
    params, twins = make_params(torch.float32), make_params(torch.float32)
    opt = optarena.Adam(params, lr=0.1, fused=True)
    eager = optarena.Adam(twins, lr=0.1, fused=False)
    for step in range(3):
        if step == 2:  # the same values, laid out transposed in memory
            for model, optimizer in ((params, opt), (twins, eager)):
                state = optimizer.state[model[0]]
                state["exp_avg"] = torch.empty(state["exp_avg"].shape[::-1]).t().copy_(state["exp_avg"])
            assert not opt.state[params[0]]["exp_avg"].is_contiguous()
        set_grads(params, step)
        set_grads(twins, step)
        opt.step()
        eager.step()
    assert relative_error(params, twins) <= 1e-6


@pytest.mark.parametrize("name", ["adam", "adafactor"], ids=["flat-chain", "shaped-chain"])
def test_gradients_that_are_views_of_one_buffer_step_like_eager(name):
    """Gradients laid out in one flat buffer (as distributed training's bucket views do)."""
    shapes = [(6, 4), (5,), (3, 2), (7,)]
    params = [torch.randn(s, generator=torch.Generator().manual_seed(i)).requires_grad_() for i, s in enumerate(shapes)]
    twins = [p.detach().clone().requires_grad_() for p in params]
    opt = optarena.create(name, params, fused=True)
    eager = optarena.create(name, twins, fused=False)
    sizes = [p.numel() for p in params]
    for step in range(4):
        buffer = torch.sin(torch.arange(sum(sizes), dtype=torch.float32) * (0.3 + step))
        for model in (params, twins):
            for p, chunk in zip(model, buffer.clone().split(sizes)):
                p.grad = chunk.view(p.shape)  # a view into the shared buffer
        opt.step()
        eager.step()
    assert relative_error(params, twins) <= 1e-6


def test_switched_off_by_environment_warns_once_and_runs_eagerly(monkeypatch):
    monkeypatch.setenv(toolchain.ENV_SWITCH, "0")
    monkeypatch.setattr(toolchain, "_warned", set())
    params, twins = make_params(torch.float64), make_params(torch.float64)
    opt = optarena.RAdam(params, fused=True)  # Adam would take torch's fused kernel: nothing to compile
    eager = optarena.RAdam(twins, fused=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            set_grads(params, step)
            set_grads(twins, step)
            opt.step()
            eager.step()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "OPTARENA_COMPILE=0" in messages[0]
    assert all(torch.equal(a, b) for a, b in zip(params, twins))


def test_chains_that_reduce_their_update_recompute_it_with_the_same_numbers(monkeypatch):
    """The cautious mask counts the update's entries before using it: its chain compiles with
    the options that recompute the update in the second pass (others, LAMB's included, with
    the plain ones), and the parameters come out bit for bit as with the update stored in a
    temporary."""
    assert compiled.compile_options(optarena.CautiousAdamW.chain()) == {
        **compiled.INDUCTOR_OPTIONS,
        **compiled.RECOMPUTE_OPTIONS,
    }
    assert compiled.compile_options(optarena.LAMB.chain()) == compiled.INDUCTOR_OPTIONS
    assert compiled.compile_options(optarena.AdamW.chain()) == compiled.INDUCTOR_OPTIONS
    monkeypatch.setenv("OPTARENA_CACHE_DIR", "")
    chain_options = compiled.compile_options

    def cautious_after_steps(options):
        monkeypatch.setattr(compiled, "compile_options", options)
        monkeypatch.setattr(compiled, "_compiled", {})
        params = make_params(torch.float32)
        opt = optarena.CautiousAdamW(params, weight_decay=0.1, fused=True)
        for step in range(3):
            set_grads(params, step)
            opt.step()
        (chain,) = compiled._compiled.values()
        return params, chain.options

    stored, plain = cautious_after_steps(lambda transforms: dict(compiled.INDUCTOR_OPTIONS))
    recomputed, options = cautious_after_steps(chain_options)
    assert "realize_reads_threshold" not in plain and options["realize_reads_threshold"] == 64
    assert all(torch.equal(a, b) for a, b in zip(stored, recomputed))


def test_compile_failure_falls_back_with_the_same_numbers(broken_compiler):
    params, twins = make_params(torch.float64), make_params(torch.float64)
    opt = optarena.NAdam(params, weight_decay=0.1, fused=True)
    eager = optarena.NAdam(twins, weight_decay=0.1, fused=False)
    with pytest.warns(RuntimeWarning, match="no compiler today"):
        for step in range(4):
            set_grads(params, step)
            set_grads(twins, step)
            opt.step()
            eager.step()
    assert relative_error(params, twins) == 0.0
    assert all(torch.equal(opt.state[p]["step"], eager.state[q]["step"]) for p, q in zip(params, twins) if opt.state[p])


def test_auto_policy_compiles_only_large_groups_and_only_once_it_pays(monkeypatch):
    small = optarena.LAMB([torch.zeros(10, requires_grad=True)])
    [row] = small.explain()
    assert row["backend"] == "eager" and "10 elements, fewer than 1,048,576" in row["reason"]
    monkeypatch.setattr(planning, "AUTO_MIN_ELEMENTS", 10)
    monkeypatch.setattr(compiled, "_compiled", {})  # nothing of this chain compiled in this process yet
    [row] = small.explain()
    assert row["backend"] == "eager" and "compiling pays once" in row["reason"]
    # the rent-or-buy rule: compile once the eager steps have lost the expected compile cost
    monkeypatch.setattr(planning, "COMPILE_COST_S", 0.0)
    small.param_groups[0]["params"][0].grad = torch.ones(10)
    small.step()  # eager, charged: the cost (0) is paid
    [row] = small.explain()
    assert row["backend"] == "compiled" and row["graphs"] == 1
    # another optimizer of a chain this process has already compiled compiles at once
    other = optarena.LAMB([torch.zeros(10, requires_grad=True)])
    monkeypatch.setattr(planning, "COMPILE_COST_S", 1e9)
    other.param_groups[0]["params"][0].grad = torch.ones(10)
    small.step()
    assert other.explain()[0]["backend"] == "compiled"


def test_torch_kernels_step_sgd_adam_adamw_and_adagrad_without_compiling(monkeypatch):
    monkeypatch.setattr(compiled, "_compiled", {})
    for name, kernel in [
        ("sgd", "_fused_sgd_"),
        ("momentum", "_fused_sgd_"),
        ("adam", "_fused_adam_"),
        ("amsgrad", "_fused_adam_"),
        ("adamw", "_fused_adamw_"),
        ("adagrad", "_fused_adagrad_"),
    ]:
        params = make_params(torch.float32)
        opt = optarena.create(name, params, **({"lr": 0.01} if name == "sgd" else {}), fused=True)
        assert {row["backend"] for row in opt.explain()} == {f"torch.{kernel}"}
        for step in range(3):
            set_grads(params, step)
            opt.step()
    assert compiled._compiled == {}
    # a user chain of the same transforms is not the named optimizer: no kernel is assumed for it
    chain = optarena.Chain(make_params(torch.float32), optarena.AdamW.chain(), fused=True)
    assert "torch." not in chain.explain()[0]["backend"]


def test_fused_and_foreach_together_are_rejected():
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        optarena.Adam(make_params(torch.float32), fused=True, foreach=True)


SCRIPT = """
import sys, torch, optarena
from optarena.optim import chunks, compiled
chunks.CHUNK = 2
g = torch.Generator().manual_seed(0)
params = [torch.randn(shape, generator=g).requires_grad_() for shape in [(6, 4), (5,), (3, 2)]]
opt = optarena.RAdam(params, lr=0.01, fused=True)
for step in range(3):
    for i, p in enumerate(params):
        p.grad = torch.sin(p.detach() + step + i)
    opt.step()
print(sorted({chain.source for chain in compiled._compiled.values()}))
print(repr([p.detach().sum().item() for p in params]))
"""


def test_a_new_process_loads_the_compiled_chain_from_disk(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPTARENA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (run.stdout.splitlines() for run in runs)
    assert first[0] == "['compiled']" and second[0] == "['disk']"
    assert first[1] == second[1]  # the same numbers, bit for bit
    assert len(list((tmp_path / "cache").glob("chain-*.bin"))) == 1


def test_no_disk_cache_when_the_folder_is_empty_string(monkeypatch):
    from optarena.optim import compile_cache

    monkeypatch.setenv("OPTARENA_CACHE_DIR", "")
    assert compile_cache.cache_dir() is None
    assert compile_cache.load("chain-anything.bin") is None


@pytest.mark.skipif(
    __import__("platform").machine() not in ("x86_64", "AMD64"), reason="Inductor probes vector ISAs on x86 only"
)
def test_isa_probes_are_skipped_only_after_a_process_saw_them_all_pass(tmp_path, monkeypatch):
    import torch._inductor.config as inductor_config
    from torch._inductor import cpu_vec_isa

    from optarena.optim import compile_cache

    monkeypatch.setenv("OPTARENA_CACHE_DIR", str(tmp_path))
    assert compile_cache.write_entry("chain-x.bin", b"")  # signed, so load() passes it on
    seen = []

    def fake_load(handle, f_globals=None):
        seen.append(inductor_config.cpp.vec_isa_ok)
        return "loaded"

    monkeypatch.setattr(torch.compiler, "load_compiled_function", fake_load)
    flags = set(cpu_vec_isa.x86_isa_checker())
    reported = [isa for isa in cpu_vec_isa.supported_vec_isa_list if set(str(isa).split()) <= flags]

    assert compile_cache.load("chain-x.bin") == "loaded" and seen[-1] is None  # no marker yet
    if reported:  # a probe that rejected one of the CPU's ISAs leaves no marker
        monkeypatch.setattr(cpu_vec_isa, "valid_vec_isa_list", lambda: reported[1:])
        compile_cache.remember_isa_probes()
        compile_cache.load("chain-x.bin")
        assert seen[-1] is None
    monkeypatch.setattr(cpu_vec_isa, "valid_vec_isa_list", lambda: reported)
    compile_cache.remember_isa_probes()
    compile_cache.load("chain-x.bin")
    assert seen[-1] is True
    assert inductor_config.cpp.vec_isa_ok is None  # only while loading
    with inductor_config.patch({"cpp.vec_isa_ok": False}):  # the user's choice wins
        compile_cache.load("chain-x.bin")
    assert seen[-1] is False


def test_isa_probes_start_together_in_the_background_once_and_only_without_a_marker(tmp_path, monkeypatch):
    import threading

    import torch._inductor.config as inductor_config

    from optarena.optim import compile_cache

    monkeypatch.setenv("OPTARENA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compile_cache, "_cpu_flags", lambda: ["avx2", "avx512f"])
    together = threading.Barrier(3, timeout=10)  # passes only if all three probes run at once
    answered = []

    class FakeIsa:
        def __bool__(self):
            together.wait()
            answered.append(threading.current_thread().name != threading.main_thread().name)
            return True

    monkeypatch.setattr(compile_cache, "_candidate_isas", lambda flags: [FakeIsa(), FakeIsa(), FakeIsa()])

    monkeypatch.setattr(compile_cache, "_probes_started", threading.Event())
    with inductor_config.patch({"cpp.vec_isa_ok": True}):  # the user's choice: nothing to probe
        assert compile_cache.start_isa_probes() is None

    monkeypatch.setattr(compile_cache, "_probes_started", threading.Event())
    marker = compile_cache._isa_marker(["avx2", "avx512f"])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    assert compile_cache.start_isa_probes() is None  # this machine's probes all passed before
    marker.unlink()

    monkeypatch.setattr(compile_cache, "_probes_started", threading.Event())
    thread = compile_cache.start_isa_probes()
    assert thread is not None
    thread.join(timeout=20)
    assert answered == [True, True, True]
    assert compile_cache.start_isa_probes() is None  # once per process


def test_a_torch_kernel_is_used_only_where_torch_registers_it_for_the_device():
    from optarena.optim.torch_kernels import ADAGRAD, ADAM, has_kernel

    cpu = [torch.nn.Parameter(torch.randn(3))]
    cpu[0].grad = torch.randn(3)
    assert has_kernel("_fused_adam_", "cpu") and ADAM.unsuitable(cpu, {}) is None
    assert ADAGRAD.unsuitable(cpu, {}) is None
    meta = [torch.nn.Parameter(torch.empty(3, device="meta"))]
    assert ADAGRAD.unsuitable(meta, {}) == "torch has no torch._fused_adagrad_ for meta"
