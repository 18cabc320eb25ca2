"""Small models and data shared by the landscape tests."""

import pytest
import torch
from torch import nn


def conv_net(seed: int = 0) -> nn.Module:
    """Convolution, batch norm, linear: weights of 4 and 2 dimensions, biases, norm-layer scales."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
        nn.LayerNorm(5),
        nn.Linear(5, 4),
    )


def mlp_with_buffers(seed: int = 0) -> nn.Module:
    """An MLP whose batch norm has non-trivial running statistics (used in eval mode)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model


def classification_batch(samples: int = 32, features: int = 6, classes: int = 3, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, features, generator=generator)
    teacher = torch.randn(features, classes, generator=generator)
    return inputs, (inputs @ teacher).argmax(dim=1)  # learnable labels


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one thread is fastest and keeps a shared machine responsive."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
