"""``tiny-transformer``: reverse a sequence of random tokens with post-LN attention blocks.

Every position of the output names the token at the mirrored position of the input, so
the model must learn to route information by position. The blocks put LayerNorm after
each residual sum, as in the original Transformer (post-LN), and there is no learning-rate
warm-up: the early steps of an adaptive method, whose second-moment estimate still rests
on few gradients, then decide whether training takes off. That is the situation RAdam was
made for (Liu et al., 2019, https://arxiv.org/abs/1908.03265; Xiong et al., 2020,
https://arxiv.org/abs/2002.04745 on post-LN and warm-up).

Training sequences are drawn fresh at every step (from the run's seed and the step); the
held-out sequences are fixed, the same for every seed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from optarena.arena.workload import Target
from optarena.arena.workloads.base import (
    BATCH_STREAM,
    TEST_STREAM,
    Budget,
    BuiltinWorkload,
    generator,
    seeded_model,
)
from optarena.checks import whole_numbers


class ReversalTransformer(nn.Module):
    """Token and learned position embeddings, post-LN encoder blocks, a linear read-out."""

    def __init__(self, vocab: int, length: int, width: int, heads: int, layers: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Parameter(torch.randn(length, width))
        block = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=0.0, batch_first=True, norm_first=False
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.readout = nn.Linear(width, vocab)

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.blocks(self.tokens(x) + self.positions))


class ReversalRun:
    """One seed's transformer, fresh random training sequences per step, fixed test sequences."""

    def __init__(self, model: nn.Module, workload: TinyTransformer, seed: int, test: Tensor) -> None:
        self.model, self.workload, self.seed, self.test = model, workload, seed, test

    def train_loss(self, step: int) -> Tensor:
        w = self.workload
        x = torch.randint(w.vocab, (w.batch_size, w.length), generator=generator(self.seed, BATCH_STREAM, step))
        logits = self.model(x)
        return F.cross_entropy(logits.reshape(-1, w.vocab), x.flip(1).reshape(-1))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        logits = self.model(self.test)
        self.model.train(was_training)
        expected = self.test.flip(1)
        correct = logits.argmax(dim=-1) == expected
        return {
            "test_loss": float(F.cross_entropy(logits.reshape(-1, self.workload.vocab), expected.reshape(-1))),
            "token_accuracy": float(correct.float().mean()),
            "sequence_accuracy": float(correct.all(dim=1).float().mean()),
        }


class TinyTransformer(BuiltinWorkload):
    """Sequence reversal with post-LN transformer blocks and no warm-up."""

    name = "tiny-transformer"
    description = "reverse random token sequences; post-LN blocks, no warm-up: adaptive methods' early steps"
    target = Target("token_accuracy", 0.95, "max")
    budget = Budget(steps=300, eval_every=10, batch_size=64)
    quick_budget = Budget(steps=150, eval_every=10, batch_size=64)

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        vocab: int = 32,
        length: int = 16,
        width: int = 64,
        heads: int = 4,
        layers: int = 2,
        test_sequences: int = 512,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size)
        whole_numbers(
            vocab=vocab, length=length, width=width, heads=heads, layers=layers, test_sequences=test_sequences
        )
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        self.vocab, self.length, self.width, self.heads, self.layers = vocab, length, width, heads, layers
        self.test_sequences = test_sequences

    def setup(self, seed: int, *, sparse: bool = False) -> ReversalRun:
        model = seeded_model(
            seed, lambda: ReversalTransformer(self.vocab, self.length, self.width, self.heads, self.layers)
        )
        test = torch.randint(self.vocab, (self.test_sequences, self.length), generator=generator(0, TEST_STREAM))
        return ReversalRun(model, self, seed, test)
