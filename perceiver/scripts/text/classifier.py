"""Lightning CLI for the Perceiver IO text classifier (task ``text_classifier`` of ``perceiver.tasks``).

    python -m perceiver.scripts.text.classifier fit --data=ImdbDataModule --data.source=sample ...

Defaults reproduce perceiver-io 0.11's IMDb classifier: DeepMind's 201M language Perceiver encoder plus a
classification decoder (preset ``deepmind-encoder`` of ``TextClassifierConfig``); ``data.vocab_size``,
``data.max_seq_len``, ``data.num_classes`` and ``data.class_names`` flow into the model config.
``--model.encoder.params`` initializes the encoder from a pretrained masked language model, and
``--model.encoder.freeze=true`` trains the decoder only.
"""

from perceiver.scripts.cli import task_main

main = task_main("text_classifier")

if __name__ == "__main__":
    main()
