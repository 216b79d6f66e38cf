"""Linear layers on the CPU's fastest float32 matrix kernels, and small autograd functions that keep less for the
backward pass than their plain PyTorch composition.

Dimensions:
    M: rows (all leading dimensions flattened, e.g. batch x positions)
    K: input channels
    N: output channels
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import is_in_torch_dispatch_mode


def onednn_available() -> bool:
    """oneDNN is built in and the CPU is an x86 one with AVX2 or AVX-512, where its kernels were measured (elsewhere,
    e.g. on ARM, :func:`linear` keeps PyTorch's own products)."""
    return torch.backends.mkldnn.is_available() and torch.backends.cpu.get_cpu_capability().startswith("AVX")


_ONEDNN = [onednn_available()]


@contextlib.contextmanager
def onednn_linear(enabled: bool) -> Iterator[None]:
    """Switch the oneDNN route of :func:`linear` on or off inside the block (e.g. to compare it with MKL)."""
    before, _ONEDNN[0] = _ONEDNN[0], enabled and onednn_available()
    try:
        yield
    finally:
        _ONEDNN[0] = before


def on_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weightᵀ`` takes oneDNN: float32 on the CPU, outside autocast, ``torch.compile`` (which picks its
    own kernels) and dispatch modes (``FlopCounterMode`` and the like know the standard matrix products).

    PyTorch runs float32 CPU matrix products on MKL, whose kernels on this project's AMD machines run about half as
    fast as oneDNN's (the AVX-512 inner product that ``torch.compile`` also uses): ``benchmarks/cpu_matmul.py``."""
    return (_ONEDNN[0] and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling()
            and not is_in_torch_dispatch_mode())


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``x (..., K) @ weight (N, K)ᵀ + bias (N,)``, any strides, on oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def matmul_t(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear`` without autograd, on oneDNN where :func:`on_onednn` (backward passes use it for ``grad @ W``)."""
    return _onednn(x, weight, bias) if on_onednn(x, weight) else F.linear(x, weight, bias)


class _Linear(torch.autograd.Function):
    """``F.linear`` whose forward and input gradient run on oneDNN; the weight gradient ``gradᵀ @ x`` stays on MKL,
    because oneDNN's inner product would need both operands transposed (measured no faster)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        x, weight = ctx.saved_tensors
        gy = grad_y.reshape(-1, grad_y.shape[-1])  # (M, N)
        grad_x = matmul_t(grad_y, weight.t()) if ctx.needs_input_grad[0] else None  # (..., K)
        grad_w = gy.t() @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None  # (N, K)
        grad_b = gy.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (N,)
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: x (..., K), weight (N, K), bias (N,) -> (..., N). float32 CPU products run on
    oneDNN (:func:`on_onednn`), the rest as ``F.linear``; results agree with it to float32 rounding."""
    if not on_onednn(x, weight):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _Linear.apply(x, weight, bias)
    return _onednn(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) computed by :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class _GeluLinear(torch.autograd.Function):
    """``linear(gelu(h), weight, bias)`` that keeps ``h`` (which GELU's backward needs anyway) instead of ``gelu(h)``
    and recomputes the GELU in the backward pass: same results, one (M, K) tensor less per MLP.

    Works under autocast: the forward's ``F.linear`` picks the matrix dtype as usual, and the backward runs its
    matrix products in the dtype of the incoming gradient (the forward's output dtype), then casts each gradient to
    the dtype of its input, exactly as autocast's own casts would.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(h, weight, bias)
        return matmul_t(F.gelu(h), weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        h, weight, bias = ctx.saved_tensors
        dt = grad_y.dtype
        gy = grad_y.reshape(-1, grad_y.shape[-1])  # (M, N)
        grad_h = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_g = matmul_t(gy, weight.to(dt).t()).view(h.shape)  # (..., K)
            grad_h = torch.ops.aten.gelu_backward(grad_g.to(h.dtype), h)
        if ctx.needs_input_grad[1]:
            g = F.gelu(h).to(dt).reshape(-1, h.shape[-1])  # (M, K), recomputed
            grad_w = (gy.t() @ g).to(weight.dtype)  # (N, K)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_b = gy.sum(0).to(bias.dtype)  # (N,)
        return grad_h, grad_w, grad_b


def gelu_linear(h: torch.Tensor, fc: torch.nn.Module) -> torch.Tensor:
    """``fc(gelu(h))``, recomputing the GELU in the backward pass instead of storing its (..., K) output.

    Only a plain ``nn.Linear`` (or :class:`Linear`) takes the recomputing path. Anything else that wraps or replaces
    it (a LoRA layer of PEFT, a quantised linear, forward hooks) is called as a module, so that its own forward is
    never bypassed."""
    plain = type(fc) in (nn.Linear, Linear) and not (fc._forward_hooks or fc._forward_pre_hooks)
    if plain and torch.is_grad_enabled() and (h.requires_grad or fc.weight.requires_grad):
        return _GeluLinear.apply(h, fc.weight, fc.bias)
    return fc(F.gelu(h))
