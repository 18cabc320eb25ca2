"""English text that ships with Python itself: the help topics of ``pydoc_data.topics``.

About 465,000 characters of the language reference as the interactive ``help()`` shows it
(prose with some code). Every CPython ships it, so a character-level language model can
train offline on real English. The text differs between Python versions, so
:func:`text_fingerprint` is part of the version of any workload built on it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import torch
from torch import Tensor


@lru_cache(maxsize=1)
def pydoc_text() -> str:
    """The help topics, sorted by name and joined by blank lines."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name].strip() for name in sorted(topics))


def text_fingerprint(text: str | None = None) -> str:
    """The first 12 hex digits of the SHA-256 of ``text`` (the pydoc text by default)."""
    return hashlib.sha256((pydoc_text() if text is None else text).encode()).hexdigest()[:12]


def encode_characters(text: str) -> tuple[Tensor, list[str]]:
    """The text as indices into its sorted alphabet, and that alphabet."""
    alphabet = sorted(set(text))
    index = {c: i for i, c in enumerate(alphabet)}
    return torch.tensor([index[c] for c in text], dtype=torch.long), alphabet
