"""Small models, data and explicitly formed Hessians for the diagnostics tests."""

import copy

import torch
from torch import nn
from torch.func import functional_call


def mlp(seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def tiny_cnn(seed: int = 0, dtype=torch.float64) -> nn.Module:
    """Convolution, batch norm (buffers), tanh, linear: 232 parameters on 1x6x6 images."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)).to(
        dtype
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 1.5)
    return model


def classification_batch(samples=40, shape=(6,), classes=3, seed=1, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, *shape, generator=generator, dtype=dtype)
    targets = torch.randint(0, classes, (samples,), generator=generator)
    return inputs, targets


def explicit_hessian(model: nn.Module, loss_fn, batch) -> torch.Tensor:
    """The full Hessian over the trainable parameters (``named_parameters()`` order), formed
    column by column with reverse-over-reverse autograd (``torch.autograd.functional.hessian``).

    A copy of the model is used; its batch-norm layers in train mode are made to normalise
    with the batch's statistics without running statistics (torch.func's own recipe), an
    independent route to the function the diagnostics differentiate. (``torch.func.hessian``
    is not used: on the train-mode batch-norm CNN below its vmapped columns are wrong, by 0.09
    against 1e-8 for finite differences and the column-by-column Hessian.)
    """
    model = copy.deepcopy(model)
    if model.training:
        torch.func.replace_all_batch_norm_modules_(model)
    named = [(name, p.detach()) for name, p in model.named_parameters() if p.requires_grad]
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())
    sizes = [p.numel() for _, p in named]
    inputs, targets = batch

    def loss_of(flat):
        pieces = flat.split(sizes)
        params = {name: piece.reshape(p.shape) for (name, p), piece in zip(named, pieces)}
        return loss_fn(functional_call(model, (params, frozen, buffers), (inputs,)), targets)

    point = torch.cat([p.reshape(-1) for _, p in named])
    return torch.autograd.functional.hessian(loss_of, point)
