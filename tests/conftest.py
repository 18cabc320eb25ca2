import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest


@pytest.fixture(autouse=True, scope="session")
def private_compile_cache(tmp_path_factory):
    """Compiled chains go to a folder of this test session, and their signing key to another,
    not the user's own."""
    import os

    folder = tmp_path_factory.mktemp("optarena-compile-cache")
    settings = {"OPTARENA_CACHE_DIR": str(folder), "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("config"))}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    yield folder
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def broken_compiler(monkeypatch):
    """Every compiled chain or group pass fails at its first call ("no compiler today"), with no
    failure remembered and no warning given before the test."""
    from optarena.optim import compiled, toolchain

    def broken(*args, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler today")

        return fail

    monkeypatch.setattr(compiled, "compiled_for", broken)
    monkeypatch.setattr(compiled, "_broken", {})
    monkeypatch.setattr(toolchain, "_warned", set())
