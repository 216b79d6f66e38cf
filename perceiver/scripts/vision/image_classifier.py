"""Lightning CLI for the Perceiver IO image classifier (task ``image_classifier`` of ``perceiver.tasks``).

    python -m perceiver.scripts.vision.image_classifier fit --data.source=sample --trainer.max_steps=600
    python -m perceiver.scripts.vision.image_classifier test --data.source=sample --ckpt_path=<checkpoint>

Defaults reproduce perceiver-io 0.11's 907K MNIST classifier (preset ``mnist-907k`` of ``ImageClassifierConfig``);
``data.image_shape`` and ``data.num_classes`` flow into the encoder and decoder configs.
"""

from perceiver.scripts.entry import task_main

main = task_main("image_classifier")

if __name__ == "__main__":
    main()
