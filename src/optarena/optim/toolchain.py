"""Whether a compiled (fused) step can run here: the switch, the compiler, one warning per reason."""

from __future__ import annotations

import functools
import os
import shutil
import threading
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

ENV_SWITCH = "OPTARENA_COMPILE"
"""Set to ``0`` to turn the fused path off (every step runs eagerly)."""

_lock = threading.Lock()
_warned: set[str] = set()


def switched_off() -> bool:
    """Whether ``OPTARENA_COMPILE=0`` turns the compiled path off."""
    return os.environ.get(ENV_SWITCH, "1").strip() == "0"


def unavailable_reason(device: torch.device) -> str | None:
    """Why the fused path cannot run on ``device`` (None when it can)."""
    if switched_off():
        return f"{ENV_SWITCH}=0 is set"
    return _toolchain_problem(device.type)


@functools.cache
def _toolchain_problem(device_type: str) -> str | None:
    try:
        import torch._dynamo  # noqa: F401
        import torch._inductor  # noqa: F401
    except Exception as error:  # pragma: no cover - depends on the installation
        return f"torch.compile is not importable ({error})"
    if not torch._dynamo.is_dynamo_supported():  # type: ignore[attr-defined]  # public in torch, not re-exported in its stubs  # pragma: no cover - depends on Python version
        return "torch.compile does not support this Python version"
    if device_type == "cpu":
        compiler = os.environ.get("CXX") or next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
        if compiler is None or not shutil.which(compiler):
            return "no C++ compiler was found (install g++ or clang++, or set CXX)"
    elif device_type == "cuda":
        try:
            import triton  # type: ignore[import-not-found]  # noqa: F401  # only on CUDA installations
        except Exception:  # pragma: no cover - depends on the installation
            return "Triton is not installed"
    elif device_type not in ("cuda", "xpu"):
        return f"no fused kernels for device type {device_type!r}"
    return None


def warn_compile_failure(what: str, error: BaseException) -> None:
    """:func:`warn_once` that compiling ``what`` failed, with the error's type and first line."""
    warn_once(f"compiling {what} failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})")


def warn_once(reason: str) -> None:
    """One warning per distinct reason, per process."""
    with _lock:
        if reason in _warned:
            return
        _warned.add(reason)
    warnings.warn(
        f"optarena: the fused (compiled) optimizer step is unavailable: {reason}. "
        f"Falling back to the eager multi-tensor step (same results, slower). "
        f"Set {ENV_SWITCH}=0 to choose the eager step silently.",
        RuntimeWarning,
        stacklevel=4,
    )


def refuse_where_torch_refuses(params: Sequence[Tensor]) -> None:
    """torch.optim's error for ``fused=True`` on tensors no fused kernel takes (the meta device,
    integer tensors); elsewhere an unavailable fused path falls back to the eager step."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        supported = _get_fused_kernels_supported_devices()
    except ImportError:  # pragma: no cover - older torch
        supported = ["mps", "cuda", "xpu", "hpu", "cpu"]
    for p in params:
        if p.device.type not in supported or not torch.is_floating_point(p):
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported devices: "
                f"{supported} but {p.dtype} and {p.device.type}"
            )
