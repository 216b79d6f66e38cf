"""Lightning CLI for the Perceiver AR symbolic audio model (task ``music`` of ``perceiver.tasks``).

    python -m perceiver.scripts.audio.symbolic fit --data=MaestroV3DataModule --data.source=sample ...

Defaults reproduce perceiver-io 0.11's MAESTRO v3 model (preset ``maestro-28.5m`` of ``SymbolicAudioModelConfig``);
``data.vocab_size`` and ``data.max_seq_len`` flow into the model config. ``--data.source=sample`` trains on the Bach
chorales shipped with music21 (offline).
"""

from perceiver.scripts.entry import task_main

main = task_main("music")

if __name__ == "__main__":
    main()
