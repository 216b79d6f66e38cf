import pytest
import torch

from configs import clm_config
from perceiver.model.core import record_attention
from perceiver.model.core.generation import next_token, top_k_filter, top_p_filter, window
from perceiver.model.text.clm import CausalLanguageModel, generate_text
from perceiver.model.text.tokenizer import load_tokenizer


def small(**kwargs) -> CausalLanguageModel:
    torch.manual_seed(0)
    config = dict(max_seq_len=16, max_latents=6, num_heads=4, num_self_attention_layers=3,
                  num_self_attention_rotary_layers=2, cross_attention_dropout=0.5)
    return CausalLanguageModel(clm_config(**{**config, **kwargs})).eval()


def left_padded_prompts(lengths, total, vocab=262):
    ids = torch.zeros(len(lengths), total, dtype=torch.long)
    pad = torch.ones(len(lengths), total, dtype=torch.bool)
    for i, n in enumerate(lengths):
        ids[i, total - n :] = torch.randint(6, vocab, (n,))
        pad[i, total - n :] = False
    return ids, pad


@pytest.mark.parametrize("abs_pos_emb", [True, False])
def test_future_tokens_never_change_past_logits(abs_pos_emb):
    model = small(abs_pos_emb=abs_pos_emb)
    x = torch.randint(6, 262, (2, 14))
    logits = model(x, prefix_len=8)  # latents 8..13
    y = x.clone()
    y[:, 11:] = torch.randint(6, 262, (2, 3))
    changed = model(y, prefix_len=8)
    torch.testing.assert_close(changed[:, :3], logits[:, :3], atol=0, rtol=0)
    assert not torch.allclose(changed[:, 3:], logits[:, 3:])


@pytest.mark.parametrize("abs_pos_emb", [True, False])
def test_left_padding_does_not_change_logits(abs_pos_emb):
    model = small(abs_pos_emb=abs_pos_emb)
    x = torch.randint(6, 262, (1, 10))
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), x], dim=1)
    pad_mask = padded == 0
    ref = model(x, prefix_len=6)
    out = model(padded, prefix_len=10, pad_mask=pad_mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_cached_forward_equals_full_pass():
    model = small()
    ids, pad = left_padded_prompts([12, 9], 12)
    full = model(ids, prefix_len=8, pad_mask=pad)  # 4 latents
    logits, cache = model(ids[:, :10], prefix_len=8, pad_mask=pad[:, :10], kv_cache=model.init_cache())
    steps = [logits]
    for i in (10, 11):
        step, cache = model(ids[:, i : i + 1], prefix_len=8, kv_cache=cache)
        steps.append(step)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("abs_pos_emb", [True, False])
def test_cached_generation_equals_uncached_over_3x_max_seq_len(abs_pos_emb):
    model = small(abs_pos_emb=abs_pos_emb)
    ids, pad = left_padded_prompts([7, 3, 5], 7)
    max_new = 3 * model.max_seq_len + 5
    recorded = {True: [], False: []}
    for use_cache in (True, False):
        from perceiver.model.core.generation import generate

        tokens = generate(
            model._forward_for_generation, model.init_cache, ids, max_new, model.max_seq_len, model.max_latents,
            pad_mask=pad, use_cache=use_cache, step_callback=lambda t, l, u=use_cache: recorded[u].append(l),
        )
        recorded[use_cache] = (tokens, torch.stack(recorded[use_cache]))
    (tok_c, log_c), (tok_u, log_u) = recorded[True], recorded[False]
    assert tok_c.shape == (3, 7 + max_new)
    assert torch.equal(tok_c, tok_u)
    assert (log_c - log_u).abs().max().item() <= 1e-5
    # the run crossed max_latents, then max_seq_len
    assert window(7, 1, max_new - 1, model.max_latents, model.max_prefix_len).start > 0
    assert torch.equal(model.generate(ids, max_new, pad_mask=pad), tok_c)


def test_cache_is_used_while_latent_window_grows(monkeypatch):
    model = small()
    lengths = []
    original = model._forward_for_generation
    monkeypatch.setattr(model, "_forward_for_generation", lambda x, *a: (lengths.append(x.shape[1]), original(x, *a))[1])
    model.generate(torch.randint(6, 262, (1, 8)), 5, num_latents=1)
    assert lengths == [8, 1, 1, 1, 1]


def test_eval_mode_disables_prefix_dropout():
    model = small()
    x = torch.randint(6, 262, (2, 16))
    torch.testing.assert_close(model(x, prefix_len=10), model(x, prefix_len=10), atol=0, rtol=0)


def test_prefix_dropout_keeps_documented_number_of_positions():
    model = small(cross_attention_dropout=0.3).train()
    x = torch.randint(6, 262, (2, 16))
    with record_attention(model, names=["cross_attn"]) as rec:
        model(x, prefix_len=10)
    keys = rec.weights["cross_attn.attention"].shape[-1]
    assert keys == (10 - int(10 * 0.3)) + 6
    a, b = model(x, prefix_len=10), model(x, prefix_len=10)
    assert not torch.allclose(a, b)


def test_prefix_len_out_of_range():
    model = small()
    with pytest.raises(ValueError, match="prefix_len"):
        model(torch.randint(6, 262, (1, 16)), prefix_len=11)  # max_prefix_len = 10
    with pytest.raises(ValueError, match="latents"):
        model(torch.randint(6, 262, (1, 12)), prefix_len=2)  # 10 latents > 6


def test_sampling_is_reproducible_and_top_k_1_is_greedy():
    model = small()
    x = torch.randint(6, 262, (2, 5))
    a = model.generate(x, 10, do_sample=True, top_k=50, generator=torch.Generator().manual_seed(1))
    b = model.generate(x, 10, do_sample=True, top_k=50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    greedy = model.generate(x, 10)
    assert torch.equal(model.generate(x, 10, do_sample=True, top_k=1, temperature=0.7), greedy)


def test_top_p_keeps_smallest_set_above_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = top_p_filter(probs.log(), 0.75).isfinite()
    assert kept.tolist() == [[True, True, False, False]]
    assert top_p_filter(probs.log(), 0.8).isfinite().tolist() == [[True, True, False, False]]
    assert top_p_filter(probs.log(), 0.81).isfinite().tolist() == [[True, True, True, False]]
    assert top_p_filter(probs.log(), 1.0).isfinite().all()
    assert top_k_filter(probs.log(), 2).isfinite().tolist() == [[True, True, False, False]]
    samples = {next_token(probs.log(), do_sample=True, top_p=0.5).item() for _ in range(20)}
    assert samples == {0}


def test_eos_stops_each_sequence():
    model = small()
    x = torch.randint(6, 262, (2, 4))
    greedy = model.generate(x, 8)
    eos = greedy[0, 6].item()  # the third generated token of row 0
    out = model.generate(x, 8, eos_token_id=eos)
    row0 = out[0, 4:].tolist()
    first = row0.index(eos)
    assert all(t == eos for t in row0[first:])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_latents=0), "num_latents"),
        (dict(num_latents=7), "num_latents"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(temperature=0.0), "temperature"),
        (dict(top_k=0), "top_k"),
    ],
)
def test_bad_generation_arguments(kwargs, match):
    model = small()
    with pytest.raises(ValueError, match=match):
        model.generate(torch.randint(6, 262, (1, 4)), 3, do_sample=True, **kwargs)


def test_bad_prompts():
    model = small()
    with pytest.raises(ValueError, match="non-empty"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="max_seq_len"):
        model.generate(torch.randint(6, 262, (1, 17)), 3)
    with pytest.raises(ValueError, match="non-empty"):
        generate_text(model, load_tokenizer(), "", 3)


def test_generate_text_decodes_only_valid_ids():
    model = small(vocab_size=300)  # ids >= 262 cannot be decoded by the byte tokenizer
    out = generate_text(model, load_tokenizer(), ["Hello", "A longer prompt"], max_new_tokens=12)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
