"""Is perceiver-io 0.11's kv-cached generation exact past the latent window? (It is not.)

    cd /tmp && <repo>/benchmarks/.venv-perceiver-io/bin/python -P <repo>/benchmarks/pio_cache_exactness.py

0.11's Hugging Face ``generate(use_cache=True)`` keeps decoding at cached speed after ``max_latents`` by cutting the
oldest entries off its self-attention caches (``_truncate_self_attention_past_key_values``) and by keeping the
latent-normed keys of positions that have become prefix. Its uncached ``generate(use_cache=False)`` recomputes each
window. This script decodes one prompt greedily both ways with a tiny random 0.11 model (LayerNorms randomised, so
that ``q_norm`` and ``kv_norm`` differ, as in a trained model) and prints where the two part. Our decoding is checked
against its own uncached pass at every step (``tests/model/test_generation.py``).
"""

from __future__ import annotations

import torch

MAX_LATENTS = 6


def main():
    torch.set_num_threads(1)
    from perceiver.model.text.clm import CausalLanguageModelConfig, PerceiverCausalLanguageModel
    from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModelConfig

    torch.manual_seed(0)
    config = CausalLanguageModelConfig(vocab_size=262, max_seq_len=32, max_latents=MAX_LATENTS, num_channels=32,
                                       num_heads=4, num_self_attention_layers=3, num_self_attention_rotary_layers=1,
                                       init_scale=0.3, cross_attention_dropout=0.0)
    hf_config = PerceiverCausalLanguageModelConfig(config)
    hf_config.is_decoder = True
    model = PerceiverCausalLanguageModel(hf_config).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    prompt = torch.randint(6, 262, (1, 9), generator=torch.Generator().manual_seed(1))

    runs = {}
    for use_cache in (True, False):
        with torch.no_grad():
            out = model.generate(input_ids=prompt, max_new_tokens=60, num_latents=1, do_sample=False,
                                 use_cache=use_cache, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
        runs[use_cache] = out.sequences[0, prompt.shape[1]:], torch.stack(out.scores, 1)[0]  # (T,), (T, V)
    same = runs[True][0] == runs[False][0]
    diff = (runs[True][1] - runs[False][1]).abs().amax(-1)  # (T,)
    grow = diff[:MAX_LATENTS]  # steps while the latents grow (1 .. max_latents)
    print(f"perceiver-io 0.11, max_latents={MAX_LATENTS}, 60 new tokens, greedy, cached vs uncached:")
    print(f"  max |logit difference| while the latents grow (steps 1-{MAX_LATENTS}): {grow.max().item():.1e}")
    print(f"  max |logit difference| after (steps {MAX_LATENTS + 1}-60): {diff[MAX_LATENTS:].max().item():.1f}")
    first = None if bool(same.all()) else int((~same).nonzero()[0]) + 1
    print(f"  tokens equal: {bool(same.all())}" + ("" if first is None else f"; first different token: {first}"))


if __name__ == "__main__":
    main()
