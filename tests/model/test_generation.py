"""Decoding past the latent window: the window rules, exactness of the kv-cache (restarts included) and streaming."""

import pytest
import torch

from perceiver.model.core.generation import Window, restart_size, stream, windows
from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig


def model_for_windows(dtype=torch.float64, **kwargs) -> CausalLanguageModel:
    """32 positions, 6 latents: prefix-keeping restarts, then sliding ones, within 3 x max_seq_len new tokens. A
    large init scale gives varied greedy tokens; float64 leaves float rounding out of the comparison. LayerNorms get
    random parameters, so that q_norm and kv_norm differ (at init both are the identity)."""
    torch.manual_seed(0)
    config = dict(vocab_size=262, max_seq_len=32, max_latents=6, num_channels=32, num_heads=4,
                  num_self_attention_layers=3, num_self_attention_rotary_layers=2, init_scale=0.3)
    model = CausalLanguageModel(CausalLanguageModelConfig(**{**config, **kwargs}))
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    return model.to(dtype).eval()


def left_padded_prompts(lengths, total, vocab=262, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), total, dtype=torch.long)
    pad = torch.ones(len(lengths), total, dtype=torch.bool)
    for i, n in enumerate(lengths):
        ids[i, total - n :] = torch.randint(6, vocab, (n,), generator=g)
        pad[i, total - n :] = False
    return ids, pad


def decode(model, ids, pad, max_new, seed=None, **options):
    if seed is not None:  # sampling: varied tokens; both runs draw the same random numbers
        options.update(do_sample=True, generator=torch.Generator().manual_seed(seed))
    steps = list(stream(model, ids, max_new, pad_mask=pad, **options))
    return steps[-1].sequences, torch.stack([s.logits for s in steps]), [s.window for s in steps]


# --- the window rule -----------------------------------------------------------------------------------------------


def test_restart_rule_by_hand():
    # 7-token prompt, max_seq_len 16, max_latents 6 (max_prefix_len 10), R = 3
    got = [(w.start, w.prefix_len, w.num_latents) for w in windows(7, 14, 1, 16, 6, 3)]
    assert got == [
        (0, 6, 1), (0, 6, 2), (0, 6, 3), (0, 6, 4), (0, 6, 5), (0, 6, 6),  # latents grow
        (0, 10, 3),  # restart: 6 - 3 former latents and the new token join the prefix, start unchanged
        (0, 10, 4), (0, 10, 5), (0, 10, 6),
        (4, 10, 3),  # restart with a full prefix: the window slides by max_latents + 1 - R = 4
        (4, 10, 4), (4, 10, 5), (4, 10, 6),
    ]
    assert all(w.end == 7 + t for t, w in enumerate(windows(7, 40, 1, 16, 6, 3)))  # always ends at the last token


@pytest.mark.parametrize("n0, num_latents", [(7, 1), (7, 3), (16, 2), (14, 6)])
def test_slide_rule_is_perceiver_io_rule(n0, num_latents):
    # latents(t) = min(L0 + t, max_latents), prefix(t) = min(N - latents(t), max_prefix_len): growth, prefix growth,
    # then a window sliding one position per step
    l0 = min(max(num_latents, n0 - 10), n0)
    for t, w in enumerate(windows(n0, 40, num_latents, 16, 6, restart_size("slide", None, 6))):
        latents = min(l0 + t, 6)
        assert w == Window(n0 + t - min(n0 + t - latents, 10) - latents, min(n0 + t - latents, 10), latents)


def test_restart_latents_validation():
    assert restart_size("restart", None, 512) == 256 and restart_size("restart", None, 1) == 1
    assert restart_size("slide", None, 512) == 512
    for rule, r, match in [("restart", 0, "restart_latents"), ("restart", 7, "restart_latents"),
                           ("slide", 3, "window_rule='restart'"), ("grow", None, "window_rule")]:
        with pytest.raises(ValueError, match=match):
            restart_size(rule, r, 6)
    with pytest.raises(ValueError, match="restart_latents"):
        model_for_windows().generate(torch.randint(6, 262, (1, 4)), 3, restart_latents=7)


# --- exactness -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("abs_pos_emb", [True, False])
@pytest.mark.parametrize("rule, restart_latents", [("restart", None), ("restart", 1), ("slide", None)])
def test_cached_equals_uncached_past_max_seq_len(abs_pos_emb, rule, restart_latents):
    model = model_for_windows(abs_pos_emb=abs_pos_emb, output_norm=abs_pos_emb)
    ids, pad = left_padded_prompts([9, 3, 6], 9)
    max_new = 3 * model.max_seq_len + 5
    options = dict(window_rule=rule, restart_latents=restart_latents)
    tok_c, log_c, win = decode(model, ids, pad, max_new, seed=0, **options)
    tok_u, log_u, _ = decode(model, ids, pad, max_new, seed=0, use_cache=False, **options)
    assert tok_c.shape == (3, 9 + max_new)
    assert torch.equal(tok_c, tok_u)
    assert (log_c - log_u).abs().max().item() <= 1e-5
    assert len(set(tok_c[0, 9:].tolist())) > 10  # varied tokens, not one repeated
    # the run had restarts that kept the start (prefix reuse) and restarts that slid the window
    kept = [b for a, b in zip(win, win[1:]) if b.prefix_len > a.prefix_len and b.start == a.start]
    slid = [b for a, b in zip(win, win[1:]) if b.start > a.start]
    assert len(kept) >= 3 and len(slid) >= 3 and win[-1].end > 2 * model.max_seq_len
    sampled = model.generate(ids, max_new, pad_mask=pad, do_sample=True, generator=torch.Generator().manual_seed(0),
                             **options)
    assert torch.equal(sampled, tok_c)


def test_cached_equals_uncached_fp32_greedy():
    model = model_for_windows(dtype=torch.float32, init_scale=0.1)
    ids, pad = left_padded_prompts([12, 5, 9, 1], 12)
    max_new = 3 * model.max_seq_len + 5
    tok_c, log_c, _ = decode(model, ids, pad, max_new)
    tok_u, log_u, _ = decode(model, ids, pad, max_new, use_cache=False)
    assert torch.equal(tok_c, tok_u)
    assert (log_c - log_u).abs().max().item() <= 1e-5


def test_left_padding_does_not_change_generation():
    model = model_for_windows()
    ids, pad = left_padded_prompts([9, 4], 9)
    out = model.generate(ids, 70, pad_mask=pad)
    alone = model.generate(ids[1:, 5:], 70)  # the short prompt without padding
    # same tokens while the padded row's window still holds pads and after the window has slid past them
    assert torch.equal(out[1, 9:], alone[0, 4:])


def test_restart_keeps_prefix_and_growth_steps_process_one_position():
    model = model_for_windows()
    processed = []
    model.input_adapter.register_forward_hook(lambda m, args, out: processed.append(args[0].shape[1]))
    ids = torch.randint(6, 262, (1, 9))
    win = [s.window for s in stream(model, ids, 60)]
    assert len(processed) == len(win)
    for t, (a, b) in enumerate(zip(win, win[1:]), start=1):
        if b.start != a.start:
            expected = b.end - b.start  # the window slid: a full pass
        elif b.prefix_len != a.prefix_len:
            expected = b.end - b.start - a.prefix_len  # only positions after the cached prefix
        else:
            expected = 1
        assert processed[t] == expected, (t, a, b)
    assert processed.count(1) > 0.7 * len(processed)


def test_restart_without_prefix_reuse_would_differ():
    # the restart pass must embed the positions joining the prefix with kv_norm: with their cached latent keys (q_norm)
    # instead, the logits change, so the exactness test above can fail
    model = model_for_windows()
    ids = torch.randint(6, 262, (1, 13))
    full = model(ids, prefix_len=10)[:, -1]  # the window after the first restart: 10 prefix + 3 latents
    _, cache = model(ids[:, :12], prefix_len=6, kv_cache=model.init_cache())  # before it: 6 prefix + 6 latents
    cache.prefix_len = 10  # pretend the cached entries of 4 latents were prefix entries
    cache.layers[0].truncate(10)
    for layer in cache.layers[1:]:
        layer.truncate(0)
    wrong = model(ids[:, 10:], prefix_len=10, kv_cache=cache)[0][:, -1]
    assert (wrong - full).abs().max() > 1e-3
    _, cache = model(ids[:, :12], prefix_len=6, kv_cache=model.init_cache())
    cache.drop_latents()
    right = model(ids[:, 6:], prefix_len=10, kv_cache=cache)[0][:, -1]
    torch.testing.assert_close(right, full, atol=1e-10, rtol=0)


# --- streaming -----------------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self):
        self.puts, self.ended = [], False

    def put(self, ids):
        self.puts.append(ids)

    def end(self):
        self.ended = True


def test_streamer_gets_prompt_then_each_token():
    model = model_for_windows()
    ids = torch.randint(6, 262, (2, 5))
    rec = Recorder()
    out = model.generate(ids, 12, streamer=rec)
    assert rec.ended and torch.equal(rec.puts[0], ids) and len(rec.puts) == 13
    assert torch.equal(torch.stack(rec.puts[1:], dim=1), out[:, 5:])


def test_stream_stops_at_eos():
    model = model_for_windows()
    ids = torch.randint(6, 262, (1, 5))
    greedy = model.generate(ids, 12)
    eos = greedy[0, 8].item()
    steps = list(stream(model, ids, 12, eos_token_id=eos))
    assert steps[-1].tokens.item() == eos and len(steps) <= 4
    assert torch.equal(steps[-1].sequences, greedy[:, : 5 + len(steps)])


def test_stream_text_pieces_join_to_generated_text():
    from perceiver.model.text.clm import generate_text, stream_text
    from perceiver.model.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    model = model_for_windows(dtype=torch.float32)
    options = dict(do_sample=True, top_k=200)  # random bytes: incomplete UTF-8 characters and invalid bytes
    text = generate_text(model, tokenizer, "Grüße,", 80, generator=torch.Generator().manual_seed(3), **options)
    pieces = list(stream_text(model, tokenizer, "Grüße,", 80, generator=torch.Generator().manual_seed(3), **options))
    assert len(pieces) > 10 and "".join(pieces) == text
    got = []
    assert generate_text(model, tokenizer, "Grüße,", 80, on_text=got.append,
                         generator=torch.Generator().manual_seed(3), **options) == text
    assert got == pieces
    with pytest.raises(ValueError, match="one prompt"):
        generate_text(model, tokenizer, ["a", "b"], 4, on_text=print)


def test_text_pieces_hold_incomplete_characters():
    from perceiver.model.text.clm.text import TextPieces
    from perceiver.model.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    ids = tokenizer("a ü€ 😀 b\n", add_special_tokens=False).input_ids
    pieces = TextPieces(tokenizer)
    out = [pieces.push([i]) for i in ids] + [pieces.flush()]
    assert "".join(out) == "a ü€ 😀 b\n"
    assert "\ufffd" not in "".join(out) and out.count("") >= 1 + 2 + 3  # held bytes of ü, €, 😀


def test_decoding_honours_wrapped_projections():
    # a hooked (or PEFT-wrapped) projection runs as a module in cached decoding as in a full pass: nothing on the
    # decoding path bypasses a layer's forward (e.g. by using its weight directly)
    model = model_for_windows()
    ids = torch.randint(6, 262, (2, 5))
    plain = model.generate(ids, 40, do_sample=True, generator=torch.Generator().manual_seed(0))
    model.self_attn.layers[1].attention.k_proj.register_forward_hook(lambda m, args, out: out * 1.5)
    options = dict(do_sample=True, generator=torch.Generator().manual_seed(0))
    _, log_c, _ = decode(model, ids, None, 40, seed=0)
    _, log_u, _ = decode(model, ids, None, 40, seed=0, use_cache=False)
    assert (log_c - log_u).abs().max().item() <= 1e-10
    assert not torch.equal(model.generate(ids, 40, **options), plain)
