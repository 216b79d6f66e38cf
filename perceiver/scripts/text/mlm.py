"""Lightning CLI for the Perceiver IO masked language model.

    python -m perceiver.scripts.text.mlm fit --data=WikipediaDataModule --data.source=sample ...

Defaults reproduce DeepMind's 201M language Perceiver; ``data.vocab_size`` and ``data.max_seq_len`` flow into
the encoder and decoder configs.
"""

from perceiver.model.text.mlm.lightning import LitMaskedLanguageModel
from perceiver.scripts.text.cli import TextCLI

DEFAULTS = {
    "model.num_latents": 256,
    "model.num_latent_channels": 1280,
    "model.encoder": {
        "num_input_channels": 768,
        "num_cross_attention_qk_channels": 256,
        "num_cross_attention_v_channels": 1280,
        "num_cross_attention_heads": 8,
        "num_self_attention_qk_channels": 256,
        "num_self_attention_v_channels": 1280,
        "num_self_attention_heads": 8,
        "num_self_attention_layers_per_block": 26,
        "num_self_attention_blocks": 1,
        "dropout": 0.1,
    },
    "model.decoder": {
        "num_cross_attention_qk_channels": 256,
        "num_cross_attention_v_channels": 768,
        "num_cross_attention_heads": 8,
        "cross_attention_residual": False,
        "dropout": 0.1,
    },
    "data": {"class_path": "perceiver.data.text.WikipediaDataModule", "init_args": {"task": "mlm", "max_seq_len": 2048}},
}


class MaskedLanguageModelCLI(TextCLI):
    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        for part in ("encoder", "decoder"):
            parser.link_arguments("data.vocab_size", f"model.{part}.vocab_size", apply_on="instantiate")
            parser.link_arguments("data.max_seq_len", f"model.{part}.max_seq_len", apply_on="instantiate")


def main(args=None):
    return MaskedLanguageModelCLI(LitMaskedLanguageModel, defaults=DEFAULTS, args=args)


if __name__ == "__main__":
    main()
