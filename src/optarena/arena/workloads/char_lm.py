"""``char-lm``: a character-level transformer language model on Python's own help text.

The text is ``pydoc_data.topics`` (:mod:`optarena.data.text`), about 465,000 characters of
English that every Python ships: the first 90% trains, the last 10% is held out. The model
reads ``context`` characters and predicts each next one: character and learned position
embeddings, ``layers`` pre-LN causal attention blocks of ``width`` units, a final
LayerNorm and a linear read-out. The metric is the validation loss (mean cross-entropy in
nats per character) on fixed windows of the held-out text.

Training windows start at positions drawn from the run's seed and the step; the held-out
windows are fixed. ``data_seed`` moves which windows are held out for evaluation (a
held-out variant of the workload). The text, and so the workload's version, depends on the
Python version: :attr:`CharLM.version` carries the text's fingerprint.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from optarena.arena.workload import Target
from optarena.arena.workloads.base import BATCH_STREAM, TEST_STREAM, Budget, BuiltinWorkload, generator, seeded_model
from optarena.checks import whole_number, whole_numbers
from optarena.data.text import encode_characters, pydoc_text, text_fingerprint

TRAIN_FRACTION = 0.9


@lru_cache(maxsize=1)
def _corpus() -> tuple[Tensor, int]:
    encoded, alphabet = encode_characters(pydoc_text())
    return encoded, len(alphabet)


class CharTransformer(nn.Module):
    """Embeddings, pre-LN causal encoder blocks, a final LayerNorm and a read-out to the alphabet."""

    def __init__(self, vocab: int, context: int, width: int, heads: int, layers: int) -> None:
        super().__init__()
        self.characters = nn.Embedding(vocab, width)
        self.positions = nn.Parameter(0.02 * torch.randn(context, width))
        block = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[1]
        h = self.characters(x) + self.positions[:n]
        h = self.blocks(h, mask=self.mask[:n, :n], is_causal=True)
        return self.readout(self.norm(h))


class CharRun:
    """One seed's model; training windows drawn per step, held-out windows fixed."""

    def __init__(self, model: nn.Module, workload: CharLM, seed: int) -> None:
        self.model, self.workload, self.seed = model, workload, seed
        text, self.vocab = _corpus()
        split = int(len(text) * TRAIN_FRACTION)
        self.train_text, held_out = text[:split], text[split:]
        span = workload.context + 1
        starts = torch.randint(
            len(held_out) - span, (workload.eval_windows,), generator=generator(workload.data_seed, TEST_STREAM)
        )
        self.held_out = held_out[starts[:, None] + torch.arange(span)]

    def _loss(self, windows: Tensor) -> Tensor:
        logits = self.model(windows[:, :-1])
        return F.cross_entropy(logits.reshape(-1, self.vocab), windows[:, 1:].reshape(-1))

    def train_loss(self, step: int) -> Tensor:
        w = self.workload
        span = w.context + 1
        starts = torch.randint(
            len(self.train_text) - span, (w.batch_size,), generator=generator(self.seed, BATCH_STREAM, step)
        )
        return self._loss(self.train_text[starts[:, None] + torch.arange(span)])

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        logits = self.model(self.held_out[:, :-1])
        self.model.train(was_training)
        expected = self.held_out[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, self.vocab), expected.reshape(-1))
        return {
            "validation_loss": float(loss),
            "validation_accuracy": float((logits.argmax(-1) == expected).float().mean()),
        }


class CharLM(BuiltinWorkload):
    """Next-character prediction on Python's help text with a small pre-LN transformer."""

    name = "char-lm"
    description = "character-level transformer LM on Python's own help text (pydoc_data.topics)"
    target = Target("validation_loss", 2.1, "min")
    budget = Budget(steps=400, eval_every=40, batch_size=32)
    quick_budget = Budget(steps=200, eval_every=40, batch_size=32)

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        context: int = 32,
        width: int = 32,
        heads: int = 2,
        layers: int = 2,
        eval_windows: int = 64,
        data_seed: int = 0,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size)
        whole_numbers(context=context, width=width, heads=heads, layers=layers, eval_windows=eval_windows)
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        self.context, self.width, self.heads, self.layers = context, width, heads, layers
        self.eval_windows = eval_windows
        self.data_seed = whole_number("data_seed", data_seed, 0)

    @property
    def version(self) -> str:
        """``1`` and the fingerprint of this Python's help text."""
        return f"1+{text_fingerprint()}"

    def setup(self, seed: int, *, sparse: bool = False) -> CharRun:
        _, vocab = _corpus()
        model = seeded_model(seed, lambda: CharTransformer(vocab, self.context, self.width, self.heads, self.layers))
        return CharRun(model, self, seed)
