import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest


@pytest.fixture(autouse=True, scope="session")
def private_compile_cache(tmp_path_factory):
    """Compiled chains go to a folder of this test session, not the user's cache."""
    import os

    folder = tmp_path_factory.mktemp("optarena-compile-cache")
    previous = os.environ.get("OPTARENA_CACHE_DIR")
    os.environ["OPTARENA_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("OPTARENA_CACHE_DIR", None)
    else:
        os.environ["OPTARENA_CACHE_DIR"] = previous
