"""``sparse-bow``: a bag-of-words classifier on a generated Zipf corpus, with sparse gradients.

Documents are strings of tokens drawn from a Zipf law over a large vocabulary (token
``r`` has probability proportional to ``1 / (r + 1) ** exponent``), so a few tokens are
everywhere and most are rare. A hidden teacher gives a random score vector to a subset of
the tokens; a document's label is the class with the largest summed score over its
tokens. The model averages the embeddings of a document's tokens (``nn.EmbeddingBag``)
and reads the class off with a linear layer, so it can represent the teacher exactly, but
each rare token's row is seen in a handful of batches only.

With ``sparse=True`` the embedding produces sparse gradients that touch only the rows of
the batch: the case of LazyAdam (and torch's SparseAdam), which update only those rows'
moments, where dense Adam decays every row's moments at every step. The corpus is fixed
(the same for every seed); seeds change the initial weights and the batch order.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from optarena.arena.workload import Target
from optarena.arena.workloads.base import (
    DATA_STREAM,
    Budget,
    BuiltinWorkload,
    ClassifierRun,
    generator,
    seeded_model,
)
from optarena.checks import whole_number, whole_numbers


def zipf_probabilities(vocab: int, exponent: float) -> Tensor:
    """``p[r]`` proportional to ``(r + 1) ** -exponent`` for ranks ``r = 0 .. vocab - 1``."""
    weights = torch.arange(1, vocab + 1, dtype=torch.float64).pow(-exponent)
    return weights / weights.sum()


@lru_cache(maxsize=2)
def zipf_corpus(
    vocab: int,
    classes: int,
    length: int,
    train: int,
    test: int,
    exponent: float,
    informative: float,
    data_seed: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(docs_train, labels_train, docs_test, labels_test)``; documents are rows of token ids.

    A ``informative`` fraction of the vocabulary, chosen at random across all frequencies,
    carries a standard normal score per class; the other tokens score zero. Documents
    whose tokens all score zero are redrawn, so every label is decided by the text.
    """
    g = generator(data_seed, DATA_STREAM)
    probabilities = zipf_probabilities(vocab, exponent)
    scores = torch.randn(vocab, classes, generator=g, dtype=torch.float64)
    scores *= (torch.rand(vocab, generator=g, dtype=torch.float64) < informative).unsqueeze(1)
    informative_token = scores.abs().sum(dim=1) > 0
    wanted = train + test
    docs = torch.empty(0, length, dtype=torch.long)
    while len(docs) < wanted:
        batch = torch.multinomial(probabilities, 2 * wanted * length, replacement=True, generator=g)
        batch = batch.reshape(-1, length)
        docs = torch.cat([docs, batch[informative_token[batch].any(dim=1)]])
    docs = docs[:wanted]
    labels = scores[docs].sum(dim=1).argmax(dim=1)
    return docs[:train], labels[:train], docs[train:], labels[train:]


class BagOfWords(nn.Module):
    """Mean of the token embeddings (``nn.EmbeddingBag``), then a linear classifier."""

    def __init__(self, vocab: int, dim: int, classes: int, sparse: bool) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab, dim, mode="mean", sparse=sparse)
        self.classifier = nn.Linear(dim, classes)

    def forward(self, docs: Tensor) -> Tensor:
        return self.classifier(self.embedding(docs))


class SparseBOW(BuiltinWorkload):
    """Bag-of-words classification over a Zipf-distributed vocabulary, sparse embedding gradients."""

    name = "sparse-bow"
    description = "bag of words on a generated Zipf corpus, nn.EmbeddingBag(sparse=True): LazyAdam's case"
    target = Target("test_accuracy", 0.7, "max")
    budget = Budget(steps=800, eval_every=25, batch_size=128)
    quick_budget = Budget(steps=400, eval_every=25, batch_size=128)

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        vocab: int = 30_000,
        dim: int = 16,
        classes: int = 4,
        length: int = 32,
        train_docs: int = 50_000,
        test_docs: int = 4_000,
        exponent: float = 1.1,
        informative: float = 0.1,
        data_seed: int = 0,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size)
        whole_numbers(vocab=vocab, dim=dim, length=length, train_docs=train_docs, test_docs=test_docs)
        whole_number("classes", classes, 2)
        if not exponent > 0:
            raise ValueError(f"exponent must be positive, got {exponent!r}")
        if not 0 < informative <= 1:
            raise ValueError(f"informative must be in (0, 1], got {informative!r}")
        whole_number("data_seed", data_seed, 0)
        self.vocab, self.dim, self.classes, self.length = vocab, dim, classes, length
        self.train_docs, self.test_docs = train_docs, test_docs
        self.exponent, self.informative, self.data_seed = float(exponent), float(informative), data_seed

    def corpus(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The fixed training and held-out documents with their labels."""
        return zipf_corpus(
            self.vocab,
            self.classes,
            self.length,
            self.train_docs,
            self.test_docs,
            self.exponent,
            self.informative,
            self.data_seed,
        )

    def setup(self, seed: int, *, sparse: bool = False) -> ClassifierRun:
        model = seeded_model(seed, lambda: BagOfWords(self.vocab, self.dim, self.classes, sparse))
        return ClassifierRun(model, self.corpus(), self.batch_size, seed)
