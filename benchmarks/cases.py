"""The benchmark cases and the model config of each, from the presets of our package: the documented 30.6M CLM
(``clm-30.6m``) and 201M MLM (``deepmind-201m``), or tiny models of the same structure for the smoke cases. Configs
are plain nested dicts, which perceiver-io 0.11's config classes accept too (the field names are the same).

perceiver-io's interpreter cannot import our package (both are called ``perceiver``), so ``run.py`` computes the
config here and passes it to every worker (``--model-config``); for a manual perceiver-io run, print it first:

    .venv/bin/python benchmarks/cases.py clm_train_b2_s4096
"""

from __future__ import annotations

import dataclasses
import json
import sys

# kind, batch, seq, latents (CLM) / None
CASES = {
    "clm_train_b2_s4096": dict(kind="clm_train", batch=2, seq=4096, latents=512),
    "clm_train_b4_s1024": dict(kind="clm_train", batch=4, seq=1024, latents=256),
    # the first case with the config field activation_checkpointing=True (perceiver-io 0.11.0's fails in its forward;
    # run.py then compares with its plain run)
    "clm_train_b2_s4096_ckpt": dict(kind="clm_train", batch=2, seq=4096, latents=512, checkpointing=True),
    "mlm_s2048": dict(kind="mlm", batch=1, seq=2048),
    "mlm_s512": dict(kind="mlm", batch=1, seq=512),
    "gen_b1": dict(kind="gen", batch=1, seq=512, new=256),
    "gen_b8": dict(kind="gen", batch=8, seq=512, new=256),
    "long_8k": dict(kind="long", batch=1, seq=8192, latents=1024),
    "long_16k": dict(kind="long", batch=1, seq=16384, latents=1024),
    "long_32k": dict(kind="long", batch=1, seq=32768, latents=1024),
    # tiny versions for the CI smoke run (seconds)
    "smoke_clm": dict(kind="clm_train", batch=1, seq=128, latents=32, tiny=True),
    "smoke_mlm": dict(kind="mlm", batch=1, seq=64, tiny=True),
    "smoke_gen": dict(kind="gen", batch=1, seq=32, new=8, tiny=True),
    "smoke_long": dict(kind="long", batch=1, seq=256, latents=32, tiny=True),
}

# tiny models of the documented structure (smoke cases): only sizes change
TINY_CLM = dict(max_seq_len=256, max_latents=64, num_channels=64, num_heads=4, num_self_attention_layers=2)
TINY_MLM = dict(
    encoder=dict(max_seq_len=64, num_input_channels=32, num_cross_attention_heads=4, num_cross_attention_qk_channels=32,
                 num_cross_attention_v_channels=64, num_self_attention_heads=4, num_self_attention_qk_channels=32,
                 num_self_attention_v_channels=64, num_self_attention_layers_per_block=2),
    decoder=dict(max_seq_len=64, num_cross_attention_heads=4, num_cross_attention_qk_channels=32,
                 num_cross_attention_v_channels=32),
    num_latents=16, num_latent_channels=64,
)


def model_config(case: dict) -> dict:
    """The model config of ``case`` (a :data:`CASES` entry) as a nested dict; needs our package."""
    from perceiver.model.text.clm import CausalLanguageModelConfig
    from perceiver.model.text.mlm import MaskedLanguageModelConfig

    tiny = case.get("tiny", False)
    if case["kind"] == "mlm":
        return dataclasses.asdict(MaskedLanguageModelConfig.from_preset("deepmind-201m", **(TINY_MLM if tiny else {})))
    fields = dict(TINY_CLM) if tiny else {}
    if case["kind"] == "long":
        # a context of `seq` with `latents` latents; no prefix dropout, so every prefix position is attended (the
        # hardest case for memory)
        fields.update(max_seq_len=case["seq"], max_latents=case["latents"], cross_attention_dropout=0.0)
    elif case.get("checkpointing"):
        fields.update(activation_checkpointing=True)
    return dataclasses.asdict(CausalLanguageModelConfig.from_preset("clm-30.6m", **fields))


if __name__ == "__main__":
    print(json.dumps(model_config(CASES[sys.argv[1]])))
