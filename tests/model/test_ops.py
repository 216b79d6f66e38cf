import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from perceiver.model.core.layers import MLP
from perceiver.model.core.ops import Linear, gelu_linear, linear, on_onednn, onednn_available, onednn_linear


def _grads(fn, h, fc, grad_out, autocast):
    h.grad = None
    fc.zero_grad(set_to_none=True)
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        y = fn()
    y.backward(grad_out.to(y.dtype))
    return y.detach(), h.grad, fc.weight.grad, fc.bias.grad


@pytest.mark.parametrize("dtype,autocast", [(torch.float64, False), (torch.float32, False), (torch.float32, True)])
def test_gelu_linear_equals_plain_composition(dtype, autocast):
    torch.manual_seed(0)
    fc = nn.Linear(24, 12).to(dtype)
    h = torch.randn(2, 7, 24, dtype=dtype, requires_grad=True)
    grad_out = torch.randn(2, 7, 12, dtype=dtype)
    ours = _grads(lambda: gelu_linear(h, fc), h, fc, grad_out, autocast)
    ref = _grads(lambda: fc(F.gelu(h)), h, fc, grad_out, autocast)
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gelu_linear_never_bypasses_a_wrapped_or_hooked_linear():
    class Scaled(nn.Linear):  # stands for a LoRA or quantised layer: its own forward must run
        def forward(self, x):
            return 2 * super().forward(x)

    torch.manual_seed(3)
    h = torch.randn(3, 8, requires_grad=True)
    fc = Scaled(8, 4)
    torch.testing.assert_close(gelu_linear(h, fc), fc(F.gelu(h)))
    plain = nn.Linear(8, 4)
    plain.register_forward_hook(lambda m, i, o: o + 1)
    torch.testing.assert_close(gelu_linear(h, plain), plain(F.gelu(h)))


def test_gelu_linear_keeps_input_not_gelu_output():
    fc = nn.Linear(8, 4)
    h = torch.randn(3, 8, requires_grad=True) * 1.0  # non-leaf
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        gelu_linear(h, fc)
    gelu_h = F.gelu(h)
    assert any(t is h for t in saved)
    assert not any(t.shape == h.shape and torch.equal(t, gelu_h) for t in saved)


def test_mlp_gradients_match_float64_reference():
    torch.manual_seed(1)
    mlp = MLP(16, widening_factor=4)
    x = torch.randn(2, 5, 16, requires_grad=True)
    mlp(x).square().sum().backward()
    ref = MLP(16, widening_factor=4).double()
    ref.load_state_dict(mlp.state_dict())
    x64 = x.detach().double().requires_grad_()
    ref.fc2(F.gelu(ref.fc1(ref.norm(x64)))).square().sum().backward()
    torch.testing.assert_close(x.grad, x64.grad.float(), rtol=1e-4, atol=1e-5)
    for (name, p), p64 in zip(mlp.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, p64.grad.float(), rtol=1e-4, atol=1e-5, msg=name)


def test_mlp_compiles_in_one_graph_and_matches_eager():
    # the torch.compile switch (off by default) must not break on the custom autograd function
    torch.manual_seed(2)
    mlp = MLP(16, widening_factor=4)
    x = torch.randn(2, 5, 16, requires_grad=True)
    y = torch.compile(mlp, fullgraph=True)(x)
    y.square().sum().backward()
    compiled = [x.grad.clone()] + [p.grad.clone() for p in mlp.parameters()]
    mlp.zero_grad()
    x.grad = None
    y_eager = mlp(x)
    y_eager.square().sum().backward()
    torch.testing.assert_close(y, y_eager, rtol=1e-5, atol=1e-6)
    for a, b in zip(compiled, [x.grad] + [p.grad for p in mlp.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _kernels(fn) -> set[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@pytest.mark.skipif(not onednn_available(), reason="no oneDNN in this torch build, or not an x86 CPU with AVX2")
@pytest.mark.parametrize("shape", [(1, 256), (3, 7, 256), (64, 256)])
def test_linear_runs_on_onednn_and_matches_float64(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    w = (0.05 * torch.randn(96, 256)).requires_grad_()
    b = torch.randn(96, requires_grad=True)
    g = torch.randn(*shape[:-1], 96)
    assert on_onednn(x, w)
    kernels = _kernels(lambda: linear(x, w, b).backward(g))
    assert "mkldnn::_linear_pointwise" in kernels and "aten::addmm" not in kernels
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    y64 = F.linear(x64, w64, b64)
    y64.backward(g.double())
    torch.testing.assert_close(linear(x, w, b).double(), y64, rtol=1e-5, atol=1e-5)
    for ours, ref in [(x.grad, x64.grad), (w.grad, w64.grad), (b.grad, b64.grad)]:
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-5)
    with torch.inference_mode():  # no autograd: the bare oneDNN product
        torch.testing.assert_close(linear(x, w, None).double(), y64 - b64, rtol=1e-5, atol=1e-5)


def test_linear_takes_the_standard_product_where_onednn_does_not_apply():
    torch.manual_seed(1)
    x, w = torch.randn(5, 16), torch.randn(8, 16)
    with onednn_linear(False):
        assert not on_onednn(x, w) and "mkldnn::_linear_pointwise" not in _kernels(lambda: linear(x, w))
    assert not on_onednn(x.double(), w.double())
    with torch.autocast("cpu", torch.bfloat16):
        assert not on_onednn(x, w) and linear(x, w).dtype == torch.bfloat16
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
        linear(x, w)
    assert counter.get_total_flops() == 2 * 5 * 16 * 8


def test_linear_module_is_a_drop_in_nn_linear():
    torch.manual_seed(2)
    ref = nn.Linear(16, 8)
    ours = Linear(16, 8)
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == ["weight", "bias"] and isinstance(ours, nn.Linear)
    x = torch.randn(4, 16)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-6, atol=1e-6)
    h = torch.randn(4, 16, requires_grad=True)  # gelu_linear's recomputing path accepts it
    assert type(gelu_linear(h, ours).grad_fn).__name__ == "_GeluLinearBackward"
