"""The compile cache against planted files: nothing is unpickled unless this user's key signed it."""

from __future__ import annotations

import os
import pickle
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optarena
from optarena.optim import compile_cache, compiled


class _Plant:
    """Unpickling this creates ``marker``: the proof that a file's code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("OPTARENA_CACHE_DIR", str(folder))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(compile_cache, "_warned", set())
    return folder


def _params():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=g).requires_grad_() for shape in [(5, 3), (4,)]]


def _step(params, **options):
    optimizer = optarena.NAdam(params, lr=0.1, **options)  # compiled (Adam would take torch's fused kernel)
    for step in range(2):
        for i, p in enumerate(params):
            p.grad = torch.cos(p.detach() + step + i)
        optimizer.step()
    return [p.detach().clone() for p in params]


def test_a_planted_pickle_under_the_entry_name_never_runs_and_the_step_still_works(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(compiled, "_compiled", {})
    _step(_params(), fused=True)  # compiles and saves the entries this chain uses
    names = sorted({chain.entry for chain in compiled._compiled.values() if chain.entry})
    assert names and all((cache / name).is_file() for name in names)

    marker = tmp_path / "code-ran"
    planted = pickle.dumps(_Plant(marker))
    pickle.loads(planted)  # the plant works: unpickling it runs its code
    assert marker.exists()
    marker.unlink()
    for name in names:
        (cache / name).write_bytes(planted)

    monkeypatch.setattr(compiled, "_compiled", {})  # a new process, as far as the chains know
    stepped = _step(_params(), fused=True)
    assert not marker.exists()
    assert {chain.source for chain in compiled._compiled.values()} == {"compiled"}  # not from disk
    for a, b in zip(stepped, _step(_params(), fused=False)):
        torch.testing.assert_close(a, b)
    assert all((cache / name).read_bytes().startswith(compile_cache.SIGNED_MAGIC) for name in names)


def test_only_an_entry_signed_with_this_users_key_under_its_own_name_is_read(cache, tmp_path, monkeypatch):
    assert compile_cache.write_entry("chain-a.bin", b"payload")
    assert compile_cache.read_entry("chain-a.bin") == b"payload"
    signed = (cache / "chain-a.bin").read_bytes()

    (cache / "chain-b.bin").write_bytes(signed)  # a valid entry copied to another name
    assert compile_cache.read_entry("chain-b.bin") is None
    tampered = bytearray(signed)
    tampered[-1] ^= 1
    (cache / "chain-c.bin").write_bytes(bytes(tampered))
    assert compile_cache.read_entry("chain-c.bin") is None
    (cache / "chain-d.bin").write_bytes(b"payload")  # unsigned
    assert compile_cache.read_entry("chain-d.bin") is None
    (cache / "chain-e.bin").symlink_to(cache / "chain-a.bin")  # a link to a good entry
    assert compile_cache.read_entry("chain-e.bin") is None
    assert compile_cache.read_entry("../chain-a.bin") is None

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "another-user"))  # another key
    assert compile_cache.read_entry("chain-a.bin") is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_under_an_entry_name_are_never_loaded(cache, data):
    cache.mkdir(exist_ok=True)
    (cache / "chain-r.bin").write_bytes(compile_cache.SIGNED_MAGIC + data)
    assert compile_cache.read_entry("chain-r.bin") is None
    assert compile_cache.load("chain-r.bin") is None


def _one_warning(caught) -> str:
    found = [w for w in caught if issubclass(w.category, compile_cache.CacheFolderWarning)]
    assert len(found) == 1, [str(w.message) for w in caught]
    return str(found[0].message)


def test_a_folder_others_may_write_is_not_used_and_warned_about_once(cache):
    cache.mkdir(mode=0o700)
    os.chmod(cache, 0o777)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not compile_cache.write_entry("chain-a.bin", b"payload")
        assert compile_cache.read_entry("chain-a.bin") is None
        assert compile_cache.load("chain-a.bin") is None
    assert "has mode 0777" in _one_warning(caught)
    assert list(cache.iterdir()) == []


def test_a_folder_of_another_user_is_not_used(cache, monkeypatch):
    cache.mkdir(mode=0o700)
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_cache.usable_cache_dir() is None
        assert not compile_cache.write_entry("chain-a.bin", b"payload")
    assert f"belongs to user id {real_uid}" in _one_warning(caught)
    assert list(cache.iterdir()) == []


def test_the_key_is_private_and_a_readable_or_linked_key_is_refused(cache, tmp_path):
    assert compile_cache.write_entry("chain-a.bin", b"payload")
    key = compile_cache.key_path()
    assert oct(os.stat(key).st_mode & 0o777) == "0o600" and oct(os.stat(key.parent).st_mode & 0o777) == "0o700"
    os.chmod(key, 0o644)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_cache.read_entry("chain-a.bin") is None
    assert "cache.key" in _one_warning(caught)

    os.chmod(key, 0o600)
    moved = tmp_path / "elsewhere.key"
    key.rename(moved)
    key.symlink_to(moved)
    compile_cache._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_cache.read_entry("chain-a.bin") is None
    assert "cache.key" in _one_warning(caught)
