"""The mask-free rational-quadratic spline of the default flow against nflows' reference implementation."""

import pytest
import torch
from nflows.transforms import PiecewiseRationalQuadraticCouplingTransform
from nflows.transforms.splines import unconstrained_rational_quadratic_spline

from sbi_gen_plugins.spline import SplineCoupling, rational_quadratic_spline

BINS, BOUND = 8, 3.0


@pytest.fixture
def spline_inputs():
    generator = torch.Generator().manual_seed(0)
    # about a third of the inputs lie outside [-BOUND, BOUND], where the map is the identity
    inputs = 3.0 * torch.randn(2000, 3, generator=generator, dtype=torch.float64)
    params = 2.0 * torch.randn(2000, 3, 3 * BINS - 1, generator=generator, dtype=torch.float64)
    return inputs, params[..., :BINS], params[..., BINS : 2 * BINS], params[..., 2 * BINS :]


@pytest.mark.parametrize("inverse", [False, True])
def test_spline_matches_nflows_values_and_gradients(spline_inputs, inverse):
    inputs, widths, heights, derivatives = spline_inputs
    ours_in, ref_in = inputs.clone().requires_grad_(), inputs.clone().requires_grad_()
    ours_params = [t.clone().requires_grad_() for t in (widths, heights, derivatives)]
    ref_params = [t.clone().requires_grad_() for t in (widths, heights, derivatives)]
    ours = rational_quadratic_spline(ours_in, *ours_params, inverse=inverse, tail_bound=BOUND)
    # nflows writes into the derivatives it is given: pass a copy that still carries the gradient
    ref = unconstrained_rational_quadratic_spline(ref_in, ref_params[0], ref_params[1], ref_params[2] * 1.0,
                                                  inverse=inverse, tails="linear", tail_bound=BOUND)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    (ours[0].sin().sum() + ours[1].sum()).backward()
    (ref[0].sin().sum() + ref[1].sum()).backward()
    for a, b in zip([ours_in, *ours_params], [ref_in, *ref_params]):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-7, atol=1e-7)


def test_spline_inverse_undoes_forward_and_log_det_is_the_slope(spline_inputs):
    inputs, widths, heights, derivatives = spline_inputs
    outputs, log_det = rational_quadratic_spline(inputs, widths, heights, derivatives, tail_bound=BOUND)
    recovered, inverse_log_det = rational_quadratic_spline(outputs, widths, heights, derivatives, inverse=True,
                                                           tail_bound=BOUND)
    torch.testing.assert_close(recovered, inputs, rtol=0, atol=1e-9)
    torch.testing.assert_close(inverse_log_det, -log_det, rtol=0, atol=1e-9)
    outside = inputs.abs() > BOUND
    assert outside.any() and torch.equal(outputs[outside], inputs[outside]) and not log_det[outside].any()
    step = 1e-6
    above, _ = rational_quadratic_spline(inputs + step, widths, heights, derivatives, tail_bound=BOUND)
    below, _ = rational_quadratic_spline(inputs - step, widths, heights, derivatives, tail_bound=BOUND)
    inside = inputs.abs() < BOUND - 1e-3
    slope = (above - below) / (2 * step)
    torch.testing.assert_close(slope[inside].log(), log_det[inside], rtol=0, atol=1e-3)


def test_coupling_layer_equals_nflows_layer_with_the_same_weights():
    torch.manual_seed(3)
    kwargs = dict(mask=torch.tensor([1, 0, 1, 0]), num_bins=BINS, tails="linear", tail_bound=BOUND)

    def conditioner(features_in, features_out):
        from nflows.nn.nets import ResidualNet

        return ResidualNet(features_in, features_out, 32, context_features=5, num_blocks=2)

    ours = SplineCoupling(transform_net_create_fn=conditioner, **kwargs)
    with torch.no_grad():  # away from nflows' near-identity initialization
        for parameter in ours.parameters():
            parameter.normal_(0.0, 0.3)
    reference = PiecewiseRationalQuadraticCouplingTransform(transform_net_create_fn=conditioner, **kwargs)
    reference.load_state_dict(ours.state_dict())
    ours, reference = ours.double(), reference.double()
    inputs, context = 2.0 * torch.randn(500, 4, dtype=torch.float64), torch.randn(500, 5, dtype=torch.float64)
    for method in ("forward", "inverse"):
        got = getattr(ours, method)(inputs, context=context)
        want = getattr(reference, method)(inputs, context=context)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
        assert (got[0] - inputs).abs().max() > 0.1 and got[1].abs().max() > 0.1  # the layer is far from identity
