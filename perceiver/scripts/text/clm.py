"""Lightning CLI for the Perceiver AR causal language model.

    python -m perceiver.scripts.text.clm fit --data=WikiTextDataModule --data.source=sample ...

Defaults reproduce the documented 30.6M model (the ``CausalLanguageModelConfig`` defaults); ``data.vocab_size``
and ``data.max_seq_len`` flow into the model config.
"""

from perceiver.model.text.clm.lightning import LitCausalLanguageModel
from perceiver.scripts.text.cli import TextCLI

DEFAULTS = {
    "data": {"class_path": "perceiver.data.text.WikiTextDataModule", "init_args": {"task": "clm", "padding_side": "left"}},
}


class CausalLanguageModelCLI(TextCLI):
    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.max_seq_len", "model.max_seq_len", apply_on="instantiate")


def main(args=None):
    return CausalLanguageModelCLI(LitCausalLanguageModel, defaults=DEFAULTS, args=args)


if __name__ == "__main__":
    main()
