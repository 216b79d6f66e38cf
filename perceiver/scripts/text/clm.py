"""Lightning CLI for the Perceiver AR causal language model (task ``clm`` of ``perceiver.tasks``).

    python -m perceiver.scripts.text.clm fit --data=WikiTextDataModule --data.source=sample ...

Defaults reproduce the documented 30.6M model (preset ``clm-30.6m`` of ``CausalLanguageModelConfig``);
``data.vocab_size`` and ``data.max_seq_len`` flow into the model config.
"""

from perceiver.scripts.entry import task_main

main = task_main("clm")

if __name__ == "__main__":
    main()
