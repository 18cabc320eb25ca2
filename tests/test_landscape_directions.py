"""Filter-normalised random directions (Li et al. 2018) and their options."""

import pytest
import torch
from landscape_models import conv_net, one_thread  # noqa: F401  (autouse)

from optarena.landscape import ParameterLayout, normalize_direction, parameters_vector, random_direction


def pieces(model, vector):
    return ParameterLayout.of(model).unflatten(vector)


def test_each_filter_gets_the_norm_of_the_weight_filter():
    model = conv_net()
    direction = random_direction(model, generator=torch.Generator().manual_seed(0))
    weights = dict(model.named_parameters())
    checked = 0
    for name, piece in pieces(model, direction).items():
        weight = weights[name].detach()
        if weight.dim() < 2:
            continue
        direction_norms = piece.flatten(1).norm(dim=1)
        weight_norms = weight.flatten(1).norm(dim=1)
        torch.testing.assert_close(direction_norms, weight_norms, rtol=1e-5, atol=0)
        # Not merely rescaled as a whole: the filters have different norms.
        assert direction_norms.std() > 0
        checked += 1
    assert checked == 3  # the convolution and the two linear weights


def test_biases_and_norm_layers_are_zero_by_default():
    model = conv_net()
    direction = random_direction(model, generator=torch.Generator().manual_seed(0))
    one_dimensional = {name: piece for name, piece in pieces(model, direction).items() if piece.dim() <= 1}
    assert set(one_dimensional) == {"0.bias", "1.weight", "1.bias", "4.bias", "5.weight", "5.bias", "6.bias"}
    for piece in one_dimensional.values():
        assert torch.count_nonzero(piece) == 0


def test_keep_normalises_biases_and_norm_layers_as_single_filters():
    model = conv_net()
    direction = random_direction(model, generator=torch.Generator().manual_seed(0), one_dimensional="keep")
    weights = dict(model.named_parameters())
    kept = 0
    for name, piece in pieces(model, direction).items():
        if piece.dim() <= 1:
            weight = weights[name].detach()
            torch.testing.assert_close(piece.norm(), weight.norm(), rtol=1e-5, atol=0)
            # Zero-initialised shifts (batch norm's bias) have norm 0, so their direction is 0 too.
            if weight.norm() > 0:
                assert torch.count_nonzero(piece) == piece.numel()
                kept += 1
    assert kept == 5


def test_layer_normalisation_matches_whole_tensors():
    model = conv_net()
    direction = random_direction(model, generator=torch.Generator().manual_seed(0), normalization="layer")
    weights = dict(model.named_parameters())
    for name, piece in pieces(model, direction).items():
        if piece.dim() >= 2:
            torch.testing.assert_close(piece.norm(), weights[name].detach().norm(), rtol=1e-5, atol=0)
            assert not torch.allclose(piece.flatten(1).norm(dim=1), weights[name].detach().flatten(1).norm(dim=1))


def test_none_leaves_the_gaussian_as_drawn_and_the_model_untouched():
    model = conv_net()
    before = parameters_vector(model)
    raw = random_direction(
        model, generator=torch.Generator().manual_seed(3), normalization="none", one_dimensional="keep"
    )
    expected = torch.randn(before.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(raw, expected, rtol=0, atol=0)
    torch.testing.assert_close(parameters_vector(model), before, rtol=0, atol=0)


def test_a_seed_gives_the_same_direction_and_another_seed_another():
    model = conv_net()
    first = random_direction(model, generator=torch.Generator().manual_seed(5))
    again = random_direction(model, generator=torch.Generator().manual_seed(5))
    other = random_direction(model, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"normalization": "filters"}, "normalization must be one of 'filter', 'layer', 'none'"),
        ({"one_dimensional": "drop"}, "one_dimensional must be one of 'zero', 'keep'"),
    ],
)
def test_unknown_options_name_the_allowed_values(options, message):
    with pytest.raises(ValueError, match=message):
        random_direction(conv_net(), **options)


def test_a_direction_of_the_wrong_length_is_rejected():
    model = conv_net()
    layout = ParameterLayout.of(model)
    with pytest.raises(ValueError, match=f"must have {layout.numel} entries"):
        normalize_direction(torch.ones(3), parameters_vector(model), layout)
