import torch

from perceiver.model.core import MultiHeadAttention, attention_mask, causal_mask, record_attention
from perceiver.model.core.attention import LayerKV
from perceiver.model.core.position import RotaryEmbedding, positions


def reference_attention(mha, x_q, x_kv, mask=None):
    """float64 attention computed from the module's own projections."""
    mha = mha.double()
    q = mha.q_proj(x_q.double()).unflatten(-1, (mha.num_heads, -1)).transpose(1, 2)
    k = mha.k_proj(x_kv.double()).unflatten(-1, (mha.num_heads, -1)).transpose(1, 2)
    v = mha.v_proj(x_kv.double()).unflatten(-1, (mha.num_heads, -1)).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = s.softmax(-1)
    return w, mha.o_proj((w @ v).transpose(1, 2).flatten(2))


def test_causal_mask_is_right_aligned():
    m = causal_mask(2, 5)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert torch.equal(causal_mask(4, 4), torch.ones(4, 4, dtype=torch.bool).tril())


def test_weights_sum_to_one_and_match_float64_reference():
    torch.manual_seed(0)
    mha = MultiHeadAttention(4, 16, 12, num_qk_channels=8, num_v_channels=20, causal_attention=True).eval()
    x_q, x_kv = torch.randn(2, 3, 16), torch.randn(2, 7, 12)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, :2] = True
    with record_attention(mha) as rec:
        out = mha(x_q, x_kv, pad_mask=pad)
    w = rec.weights[""]
    assert w.shape == (2, 4, 3, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 3))
    mask = attention_mask(pad, 3, 7, causal=True)
    w_ref, out_ref = reference_attention(mha, x_q, x_kv, mask)
    torch.testing.assert_close(w.double(), w_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.double(), out_ref, atol=1e-5, rtol=0)
    assert (w[1, :, :, :2] == 0).all()  # padding gets no weight
    assert (w[0, :, 0, 5:] == 0).all()  # right-aligned causality: query 0 of 3 sees keys 0..4


def test_fused_path_equals_explicit_path_and_chunked_heads():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 16)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[0, :3] = True
    mha = MultiHeadAttention(4, 16, 16, causal_attention=True).eval()
    for p in (None, pad):
        fused = mha(x, x, pad_mask=p)
        with record_attention(mha):
            explicit = mha(x, x, pad_mask=p)
        torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=1e-5)
        mha.max_heads_parallel = 2
        torch.testing.assert_close(mha(x, x, pad_mask=p), fused, atol=1e-6, rtol=1e-5)
        mha.max_heads_parallel = 4


def test_kv_cache_incremental_equals_full_with_rotary():
    torch.manual_seed(0)
    mha = MultiHeadAttention(2, 8, 8, causal_attention=True).eval()
    x = torch.randn(1, 5, 8)
    rot = RotaryEmbedding.at(positions(1, 5), 2)
    full = mha(x, x, rot_q=rot, rot_k=rot)
    cache = LayerKV(capacity=5)
    steps = [mha(x[:, :3], x[:, :3], rot_q=rot[:, :, :3], rot_k=rot[:, :, :3], kv_cache=cache)]
    for i in (3, 4):
        r = rot[:, :, i : i + 1]
        steps.append(mha(x[:, i : i + 1], x[:, i : i + 1], rot_q=r, rot_k=r, kv_cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-6, rtol=1e-5)


def test_rotary_is_relative():
    """Scores of rotated q and k depend only on the position difference."""
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(pq, pk):
        rq = RotaryEmbedding.at(torch.tensor([[pq]]), 8)
        rk = RotaryEmbedding.at(torch.tensor([[pk]]), 8)
        return (rq.rotate(q) * rk.rotate(k)).sum()
    torch.testing.assert_close(score(7, 3), score(104, 100))
    assert not torch.allclose(score(7, 3), score(7, 4))
