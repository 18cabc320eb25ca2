"""Argument checks shared across the package, with one wording for their errors.

Each check returns the value it accepted, so it reads as an assignment, and raises a
``ValueError`` that names the argument, what is allowed and what was given.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["whole_number", "whole_numbers", "finite_number", "fits_in_memory", "memory_bytes"]


def _is_whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def whole_number(name: str, value: object, minimum: int = 1, *, none_means: str | None = None) -> int | None:
    """``value`` if it is a whole number >= ``minimum`` (``None`` too when ``none_means`` says what it means).

    >>> whole_number("steps", 10)
    10
    """
    if value is None and none_means is not None:
        return None
    if not _is_whole(value) or value < minimum:  # type: ignore[operator]
        alternative = f" (or None for {none_means})" if none_means is not None else ""
        raise ValueError(f"{name} must be a whole number >= {minimum}{alternative}, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def whole_numbers(minimum: int = 1, **values: object) -> None:
    """Check several arguments at once; the error names the first that is not a whole number >= ``minimum``."""
    for name, value in values.items():
        whole_number(name, value, minimum)


def finite_number(name: str, value: object, minimum: float = 0.0, *, strict: bool = False, meaning: str = "") -> float:
    """``value`` as a float if it is a finite real number >= ``minimum`` (> when ``strict``).

    ``meaning`` is added to the error in parentheses, to say what the number is.
    """
    sign = ">" if strict else ">="
    valid = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
    )
    if not valid:
        note = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} must be a finite number {sign} {minimum:g}{note}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        import os

        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def fits_in_memory(what: str, needed: int | float, lower: str) -> None:
    """A ValueError before allocating when ``what`` would need more bytes than the machine has.

    ``lower`` says which settings to reduce, e.g. ``"lower --steps or --starts"``.
    """
    total = memory_bytes()
    if total is not None and needed > total:
        raise ValueError(
            f"{what} would need {needed / 2**30:,.1f} GiB, more than this machine's {total / 2**30:,.1f} GiB "
            f"of memory; {lower}"
        )
