"""Small autograd functions that keep less for the backward pass than their plain PyTorch composition.

Dimensions:
    M: rows (all leading dimensions flattened, e.g. batch x positions)
    K: input channels
    N: output channels
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


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
        return F.linear(F.gelu(h), weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        h, weight, bias = ctx.saved_tensors
        dt = grad_y.dtype
        gy = grad_y.reshape(-1, grad_y.shape[-1])  # (M, N)
        grad_h = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_g = (gy @ weight.to(dt)).view(h.shape)  # (..., K)
            grad_h = torch.ops.aten.gelu_backward(grad_g.to(h.dtype), h)
        if ctx.needs_input_grad[1]:
            g = F.gelu(h).to(dt).reshape(-1, h.shape[-1])  # (M, K), recomputed
            grad_w = (gy.t() @ g).to(weight.dtype)  # (N, K)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_b = gy.sum(0).to(bias.dtype)  # (N,)
        return grad_h, grad_w, grad_b


def gelu_linear(h: torch.Tensor, fc: torch.nn.Module) -> torch.Tensor:
    """``fc(gelu(h))``, recomputing the GELU in the backward pass instead of storing its (..., K) output.

    Only a plain ``nn.Linear`` takes the recomputing path. Anything else that wraps or replaces it (a LoRA layer of
    PEFT, a quantised linear, forward hooks) is called as a module, so that its own forward is never bypassed."""
    plain = type(fc) is torch.nn.Linear and not (fc._forward_hooks or fc._forward_pre_hooks)
    if plain and torch.is_grad_enabled() and (h.requires_grad or fc.weight.requires_grad):
        return _GeluLinear.apply(h, fc.weight, fc.bias)
    return fc(F.gelu(h))
