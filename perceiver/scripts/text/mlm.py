"""Lightning CLI for the Perceiver IO masked language model (task ``mlm`` of ``perceiver.tasks``).

    python -m perceiver.scripts.text.mlm fit --data=WikipediaDataModule --data.source=sample ...

Defaults reproduce DeepMind's 201M language Perceiver (preset ``deepmind-201m`` of ``MaskedLanguageModelConfig``);
``data.vocab_size`` and ``data.max_seq_len`` flow into the encoder and decoder configs.
"""

from perceiver.scripts.entry import task_main

main = task_main("mlm")

if __name__ == "__main__":
    main()
