"""Every bad input of ``docs/reliability.md``, really tried: each case below feeds one bad input to the library, the
CLI, a notebook's parameter check or the workbench, and the last line the user sees must be the one the document
shows (temporary paths read ``<tmp>``). The document's other rows name the tests that cover them; those tests must
exist."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import save_file

from configs import cli_args, clm_config, mlm_config

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
CASES: dict[str, Callable[[Path], None]] = {}


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn

    return register


class Exit(Exception):
    """A command-line run that exited (``SystemExit``) with what it printed on stderr."""

    def __init__(self, code, stderr: str):
        super().__init__(stderr)
        self.code, self.stderr = code, stderr


def seen(error: BaseException, tmp: Path) -> str:
    """The last line the user sees: of stderr for an exit, else of ``Type: message`` (a traceback's end)."""
    text = error.stderr if isinstance(error, Exit) else f"{type(error).__name__}: {error}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(error, Exit):  # jsonargparse: the "error:" line names the option, the last one the value
        lines = [next((x for x in lines if x.startswith("error:")), ""), lines[-1]]
    return " … ".join(lines[-2:] if isinstance(error, Exit) else lines[-1:]).replace(str(tmp), "<tmp>")


# --- data sources -----------------------------------------------------------------------------------------------


def text_files(tmp: Path, source: Path, **kwargs):
    from perceiver.data.text import TextFilesDataModule

    TextFilesDataModule(source=str(source), dataset_dir=str(tmp / "cache"), max_seq_len=16, **kwargs).setup()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@case("source-missing")
def _(tmp):
    text_files(tmp, tmp / "nope")


@case("source-is-a-file")
def _(tmp):
    text_files(tmp, write(tmp / "notes.txt", b"some text"))


@case("source-empty-directory")
def _(tmp):
    (tmp / "corpus").mkdir()
    text_files(tmp, tmp / "corpus")


@case("source-whitespace-only")
def _(tmp):
    for i in range(3):
        write(tmp / "corpus" / f"{i}.txt", b" \n\t\n")
    text_files(tmp, tmp / "corpus")


@case("source-unreadable-file")
def _(tmp):
    write(tmp / "corpus" / "a.txt", b"fine text")
    os.symlink(tmp / "gone.txt", tmp / "corpus" / "b.txt")  # a dangling link: open() fails
    text_files(tmp, tmp / "corpus")


@case("source-binary-file")
def _(tmp):
    write(tmp / "corpus" / "a.txt", b"fine text")
    write(tmp / "corpus" / "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    text_files(tmp, tmp / "corpus")


@case("source-not-utf8")
def _(tmp):
    write(tmp / "corpus" / "a.txt", b"fine text")
    write(tmp / "corpus" / "latin1.txt", "café au lait".encode("latin-1"))
    text_files(tmp, tmp / "corpus")


@case("source-parquet-without-text")
def _(tmp):
    (tmp / "corpus").mkdir()
    pq.write_table(pa.table({"content": ["a document"]}), tmp / "corpus" / "docs.parquet")
    text_files(tmp, tmp / "corpus")


@case("source-parquet-corrupt")
def _(tmp):
    write(tmp / "corpus" / "docs.parquet", b"PAR1 this is not a parquet file PAR1")
    text_files(tmp, tmp / "corpus")


@case("source-saved-dataset-damaged")
def _(tmp):
    write(tmp / "corpus" / "dataset_dict.json", b'{"splits": ["train"]}')
    text_files(tmp, tmp / "corpus")


@case("source-clf-without-labels")
def _(tmp):
    (tmp / "corpus").mkdir()
    pq.write_table(pa.table({"text": ["one document", "another one", "a third"]}), tmp / "corpus" / "docs.parquet")
    text_files(tmp, tmp / "corpus", task="clf")


@case("source-hub-offline")
def _(tmp):
    from perceiver.data.text import WikipediaDataModule

    with offline():
        WikipediaDataModule(source="hub", dataset_dir=str(tmp)).setup()


@case("tokenizer-hub-offline")
def _(tmp):
    from perceiver.data.text import WikipediaDataModule

    with offline():
        WikipediaDataModule(source="sample", tokenizer="bert-base-uncased")


@contextlib.contextmanager
def offline():
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            mp.setenv(name, "1")
        yield


@case("data-mask-prob-out-of-range")
def _(tmp):
    from perceiver.data.text import WikipediaDataModule

    WikipediaDataModule(source="sample", mask_prob=1.5)


@case("data-clm-right-padding")
def _(tmp):
    from perceiver.data.text import WikiTextDataModule

    WikiTextDataModule(source="sample", task="clm", padding_side="right")


@case("data-encoding-errors-unknown")
def _(tmp):
    from perceiver.data.text import WikiTextDataModule

    WikiTextDataModule(source="sample", encoding_errors="ignore")


# --- pretrained weights (--model.params) and checkpoints ---------------------------------------------------------


def load_clm_params(source, **config):
    from perceiver.model.text.clm import LitCausalLanguageModel

    LitCausalLanguageModel.create(clm_config(**config), params=str(source))


def saved_clm(tmp: Path, name: str = "m.ckpt", **config) -> Path:
    from perceiver.model.text.clm import LitCausalLanguageModel

    model = LitCausalLanguageModel.create(clm_config(**config))
    path = tmp / name
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path


@case("params-missing-path")
def _(tmp):
    load_clm_params(tmp / "nope.ckpt")


@case("params-empty-file")
def _(tmp):
    load_clm_params(write(tmp / "m.ckpt", b""))


@case("params-truncated-checkpoint")
def _(tmp):
    path = saved_clm(tmp)
    os.truncate(path, path.stat().st_size // 2)
    load_clm_params(path)


@case("params-corrupt-checkpoint")
def _(tmp):
    path = saved_clm(tmp)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):  # inside the tensor data: torch.load alone would accept it
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    load_clm_params(path)


@case("params-truncated-safetensors")
def _(tmp):
    path = tmp / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, path)
    os.truncate(path, path.stat().st_size // 2)
    load_clm_params(path)


@case("params-corrupt-safetensors-header")
def _(tmp):
    path = tmp / "model.safetensors"
    save_file({"w": torch.zeros(4)}, path)
    data = bytearray(path.read_bytes())
    data[12] = ord("!")
    path.write_bytes(bytes(data))
    load_clm_params(path)


@case("params-directory-without-weights")
def _(tmp):
    write(tmp / "model" / "config.json", b"{}")
    load_clm_params(tmp / "model")


@case("params-directory-corrupt-config")
def _(tmp):
    from perceiver.model.text.clm.huggingface import PerceiverCausalLanguageModel

    PerceiverCausalLanguageModel.from_backend(clm_backend()).save_pretrained(tmp / "model")
    write(tmp / "model" / "config.json", b'{"model_type": "perceiver-clm", ')
    load_clm_params(tmp / "model")


def clm_backend():
    from perceiver.model.text.clm import CausalLanguageModel

    return CausalLanguageModel(clm_config())


@case("params-deeper-model")
def _(tmp):
    load_clm_params(saved_clm(tmp, num_self_attention_layers=2))  # into the 1-layer model


@case("params-shallower-model")
def _(tmp):
    load_clm_params(saved_clm(tmp), num_self_attention_layers=2)


@case("params-other-vocabulary")
def _(tmp):
    load_clm_params(saved_clm(tmp, vocab_size=300))


@case("params-other-model-type")
def _(tmp):
    from perceiver.model.text.mlm import LitMaskedLanguageModel

    mlm = LitMaskedLanguageModel.create(mlm_config())
    torch.save({"state_dict": mlm.state_dict()}, tmp / "mlm.ckpt")
    load_clm_params(tmp / "mlm.ckpt")


class RunsCode:
    def __reduce__(self):
        return (os.system, ("true",))


@case("params-malicious-pickle")
def _(tmp):
    torch.save({"state_dict": {}, "payload": RunsCode()}, tmp / "evil.ckpt")
    load_clm_params(tmp / "evil.ckpt")


@case("params-hub-id-offline")
def _(tmp):
    with offline():
        load_clm_params("krasserm/perceiver-ar-clm-base")


@case("resume-other-model")
def _(tmp):
    """``trainer.fit(model, ckpt_path=...)`` with a checkpoint of a wider model."""
    import pytorch_lightning as pl

    from perceiver.data.text import WikiTextDataModule
    from perceiver.model.text.clm import LitCausalLanguageModel

    wider = LitCausalLanguageModel.create(clm_config(num_channels=64))
    saver = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    saver.strategy.connect(wider)
    saver.save_checkpoint(tmp / "wider.ckpt")
    path = tmp / "wider.ckpt"
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp))
    data = WikiTextDataModule(source="sample", task="clm", max_seq_len=64, max_documents=4, num_workers=0,
                              dataset_dir=str(tmp / "data"))
    trainer.fit(LitCausalLanguageModel.create(clm_config()), data, ckpt_path=str(path))


@case("predecessor-unknown-config-key")
def _(tmp):
    import shutil

    from perceiver.model.text.predecessor import load_predecessor

    shutil.copytree(ROOT / "tests" / "fixtures" / "predecessor" / "clm" / "hf", tmp / "clm")
    config = (tmp / "clm" / "config.json").read_text().replace('"abs_pos_emb"', '"rope_theta": 10000, "abs_pos_emb"')
    (tmp / "clm" / "config.json").write_text(config)
    load_predecessor(str(tmp / "clm"))


@case("predecessor-not-a-predecessor-directory")
def _(tmp):
    from perceiver.model.text.predecessor import load_predecessor

    write(tmp / "bert" / "config.json", b'{"model_type": "bert"}')
    torch.save({"w": torch.zeros(1)}, tmp / "bert" / "pytorch_model.bin")
    load_predecessor(str(tmp / "bert"))


# --- the command line: optimizer, schedule, model and trainer arguments ---------------------------------------------


def cli(tmp: Path, *args: str, task: str = "clm", fit: bool = False):
    """The task's CLI with a small model on the sample; ``fit`` runs the subcommand (else only builds)."""
    from perceiver.scripts.entry import task_main

    base = ["--data.source=sample", f"--data.dataset_dir={tmp / 'data'}", "--data.max_seq_len=64",
            "--data.num_workers=0", *cli_args(task), "--trainer.accelerator=cpu", "--trainer.max_steps=2",
            "--trainer.enable_progress_bar=false", *([f"--run_dir={tmp / 'run'}"] if fit else [])]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), pytest.MonkeyPatch.context() as mp:
            mp.setattr("sys.argv", ["cli"])
            task_main(task)([*(["fit"] if fit else []), *base, *args], run=fit)
    except SystemExit as e:
        raise Exit(e.code, stderr.getvalue()) from None


@case("optimizer-negative-lr")
def _(tmp):
    cli(tmp, "--optimizer=AdamW", "--optimizer.lr=-1")


@case("optimizer-bad-betas")
def _(tmp):
    cli(tmp, "--optimizer=Adam", "--optimizer.betas=[0.9,1.5]")


@case("optimizer-unknown-class")
def _(tmp):
    cli(tmp, "--optimizer=AdamWW")


@case("optimizer-unknown-argument")
def _(tmp):
    cli(tmp, "--optimizer=AdamW", "--optimizer.learning_rate=1e-3")


@case("scheduler-negative-warmup")
def _(tmp):
    cli(tmp, "--optimizer=AdamW", "--lr_scheduler=CosineWithWarmupLR", "--lr_scheduler.warmup_steps=-1")


@case("scheduler-total-below-warmup")
def _(tmp):
    cli(tmp, "--optimizer=AdamW", "--lr_scheduler=CosineWithWarmupLR", "--lr_scheduler.warmup_steps=10",
        "--lr_scheduler.training_steps=5")


@case("scheduler-min-fraction-out-of-range")
def _(tmp):
    cli(tmp, "--optimizer=AdamW", "--lr_scheduler=CosineWithWarmupLR", "--lr_scheduler.min_fraction=2")


@case("scheduler-cosine-without-max-steps")
def _(tmp):
    cli(tmp, "--optimizer=AdamW", "--lr_scheduler=CosineWithWarmupLR", "--trainer.max_steps=-1",
        "--trainer.max_epochs=1")


@case("cli-data-batch-size-zero")
def _(tmp):
    cli(tmp, "--data.batch_size=0")


@case("cli-model-heads-do-not-divide-channels")
def _(tmp):
    cli(tmp, "--model.num_channels=30")


@case("cli-num-latents-and-max-latents-disagree")
def _(tmp):
    cli(tmp, "--model.num_latents=8", "--model.max_latents=12")


@case("cli-mlm-encoder-field")
def _(tmp):
    cli(tmp, "--model.encoder.num_cross_attention_heads=0", task="mlm")


@case("cli-trainer-max-steps-not-int")
def _(tmp):
    cli(tmp, "--trainer.max_steps=abc")


@case("cli-trainer-devices-invalid")
def _(tmp):
    cli(tmp, "--trainer.devices=abc")


@case("cli-run-dir-holds-a-run")
def _(tmp):
    from perceiver.runs import status

    status.write(tmp / "run", status="completed", step=2, max_steps=2)  # an earlier run in the directory
    cli(tmp, fit=True)


@case("cli-resume-truncated-checkpoint")
def _(tmp):
    path = saved_clm(tmp, "last.ckpt")
    os.truncate(path, 100)
    cli(tmp, f"--ckpt_path={path}", fit=True)


@case("cli-resume-missing-checkpoint")
def _(tmp):
    cli(tmp, f"--ckpt_path={tmp / 'checkpoints' / 'last.ckpt'}", fit=True)


# --- notebook parameters: the real parameters cells, with a value papermill would inject --------------------------


def notebook_parameters(notebook: str, **injected):
    import nbformat

    from widgets.notebook import check_parameters

    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    # module mode, as IPython runs a cell: annotations land in __annotations__ (not this file's future import)
    exec(compile(cell.source, notebook, "exec", dont_inherit=True), namespace)
    namespace.update(injected)  # what papermill's injected-parameters cell does
    check_parameters(namespace)


@case("notebook-max-steps-not-int")
def _(tmp):
    notebook_parameters("train_clm.ipynb", max_steps="abc")


@case("notebook-devices-float")
def _(tmp):
    notebook_parameters("train_mlm.ipynb", devices=1.5)


@case("notebook-headless-string")
def _(tmp):
    notebook_parameters("train_clm.ipynb", headless="yes")


@case("notebook-max-new-tokens-float")
def _(tmp):
    notebook_parameters("generate.ipynb", max_new_tokens=16.5)


@case("notebook-unknown-preset")
def _(tmp):
    from widgets import Workbench

    Workbench("clm", preset="huge GPU", run_dir=str(tmp))


# --- widget fields ---------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def workbench(task: str):
    from widgets import Workbench

    return Workbench(task, preset="tiny CPU", run_dir="runs/test-bad-inputs")


def start_with(task: str, form: str, field: str, value):
    """Set one widget field, check that it is marked and Start is disabled, then press Start headless."""
    wb = workbench(task)
    widget = (wb.model_form if form == "model" else wb.settings_form).field(field)
    try:
        widget.input.value = value
        assert wb.start_button.disabled and widget.error.value, f"{field}={value!r} is not marked"
        wb.start(follow=False)
    finally:
        wb.apply_preset("tiny CPU")
    assert not wb.start_button.disabled


@case("widget-negative-channels")
def _(tmp):
    start_with("clm", "model", "num_channels", -8)


@case("widget-latents-above-sequence")
def _(tmp):
    start_with("clm", "model", "max_latents", 1000)


@case("widget-dropout-above-one")
def _(tmp):
    start_with("mlm", "model", "encoder.dropout", 1.5)


@case("widget-negative-lr")
def _(tmp):
    start_with("clm", "settings", "lr", "-1")


@case("widget-batch-size-zero")
def _(tmp):
    start_with("clm", "settings", "batch_size", 0)


# --- the document ------------------------------------------------------------------------------------------------


def doc_rows() -> list[list[str]]:
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 4 and not set(cells[0]) <= set("-: ") and cells[0] != "case":
            rows.append(cells)
    return rows


def documented() -> dict[str, str]:
    """case id -> the last line the document shows, for rows whose case is in this file."""
    out = {}
    for name, _, shown, test in doc_rows():
        if "test_bad_inputs.py" in test:
            out[name.strip("`")] = shown.strip().strip("`").strip().replace("\\|", "|")
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path):
    with pytest.raises(BaseException) as info:
        CASES[name](tmp_path)
    assert info.type is not AssertionError, info.value
    assert seen(info.value, tmp_path) == documented().get(name), f"docs/reliability.md, row {name}"


def test_every_row_has_its_test():
    rows = doc_rows()
    assert len(rows) >= 30
    assert sorted(documented()) == sorted(CASES)  # every case is documented, every documented case exists
    for name, _, _, test in rows:
        for path, function in re.findall(r"`(tests/[\w/]+\.py)::(\w+)", test):
            assert re.search(rf"^def {function}\(", (ROOT / path).read_text(), flags=re.M), f"{name}: {test}"
