"""TextDataModule: properties, clm batches, padding, shifting, caching and offline behaviour."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from perceiver.model.core import ConfigError
import torch

from perceiver.data.text import HubUnreachableError, TextDataModule, WikipediaDataModule, WikiTextDataModule

IGNORE = -100


def test_properties_available_after_init():
    dm = WikiTextDataModule(max_seq_len=1024)  # source=hub, but nothing is loaded yet
    assert dm.vocab_size == 262 == len(dm.tokenizer)
    assert dm.max_seq_len == 1024
    assert dm.tokenizer.pad_token_id == 0 and dm.tokenizer.mask_token_id == 3
    assert dm.padding_side == "right" and WikiTextDataModule(task="clm").padding_side == "left"


def test_argument_validation():
    with pytest.raises(ValueError, match="--data.padding_side=left"):
        WikipediaDataModule(task="clm", padding_side="right")
    with pytest.raises(ConfigError, match="max_seq_len must be a positive integer") as e:
        WikipediaDataModule(max_seq_len=0)
    assert e.value.field == "max_seq_len"
    dm = WikipediaDataModule(max_seq_len=4096)
    dm.check_max_seq_len(4096)
    with pytest.raises(ValueError, match="--data.max_seq_len=2048"):
        dm.check_max_seq_len(2048)


def _stream(dm, split="train") -> np.ndarray:
    return np.fromfile(dm.cache_dir / f"{split}.tokens.bin", dtype=dm.manifest["dtype"]).astype(np.int64)


def test_clm_labels_are_inputs_shifted_by_one(sample_clm):
    n, stream = sample_clm.max_seq_len, _stream(sample_clm)
    batch = sample_clm.collator([sample_clm.ds_train[i] for i in (0, 1, 7)])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["pad_mask"].shape == (3, n)
    for row, i in enumerate((0, 1, 7)):
        assert batch["input_ids"][row].tolist() == stream[i * n : i * n + n].tolist()
        assert batch["labels"][row].tolist() == stream[i * n + 1 : i * n + n + 1].tolist()
    assert not batch["pad_mask"].any()
    # every token of the stream after the first is a target exactly once
    assert len(sample_clm.ds_train) == -(-(len(stream) - 1) // n)


def test_clm_last_example_is_left_padded(sample_clm):
    n, stream = sample_clm.max_seq_len, _stream(sample_clm, "validation")
    last = len(sample_clm.ds_valid) - 1
    batch = sample_clm.collator([sample_clm.ds_valid[last]])
    num_inputs = len(stream) - 1 - last * n
    assert 0 < num_inputs < n
    pad = batch["pad_mask"][0]
    assert pad[: n - num_inputs].all() and not pad[n - num_inputs :].any()
    assert (batch["input_ids"][0][pad] == 0).all() and (batch["labels"][0][pad] == IGNORE).all()
    assert batch["labels"][0][-1] == stream[-1]


def test_random_shift_varies_windows_of_the_stream(sample_dir):
    dm = WikipediaDataModule(
        source="sample", dataset_dir=sample_dir, max_seq_len=256, task="clm", random_train_shift=True, num_workers=0
    )
    dm.setup()
    stream, n = _stream(dm), 256
    torch.manual_seed(0)
    windows = [dm.ds_train[3]["input_ids"] for _ in range(20)]
    assert len({tuple(w.tolist()) for w in windows}) > 10
    for w in windows:
        starts = [s for s in range(3 * n, 4 * n) if stream[s] == w[0] and np.array_equal(stream[s : s + n + 1], w)]
        assert starts and len(w) == n + 1
    assert not dm.ds_valid.random_shift


def test_mlm_right_padding(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("word " * 30)
    (src / "b.txt").write_text("tail")
    dm = WikipediaDataModule(source=str(src), dataset_dir=str(tmp_path / "d"), max_seq_len=64, valid_every=2)
    dm.setup()
    batch = dm.collator([dm.ds_valid[0]])
    assert batch["pad_mask"][0].tolist() == [False] * 4 + [True] * 60
    assert (batch["input_ids"][0, 4:] == 0).all() and (batch["labels"][0, 4:] == IGNORE).all()


def test_dataloader_with_worker_processes(sample_mlm):
    dm = WikipediaDataModule(source="sample", dataset_dir=sample_mlm.dataset_dir, max_seq_len=512, num_workers=2)
    dm.setup()
    assert not dm.cache_was_built
    batches = [b for _, b in zip(range(3), dm.val_dataloader())]
    assert all(b["input_ids"].shape == (16, 512) for b in batches)


def test_validation_order_samples_the_whole_split(sample_dir):
    """limit_val_batches keeps the first batches: they must spread over the split, in the same order for every
    seed (runs of a sweep are validated on the same windows), and the whole loader still covers every window."""
    orders = []
    for seed in (0, 1):
        dm = WikipediaDataModule(source="sample", dataset_dir=sample_dir, max_seq_len=256, task="clm", batch_size=8,
                                 num_workers=0, seed=seed)
        dm.setup()
        orders.append(dm.val_dataloader().dataset.indices)
    order, n = orders[0], len(orders[0])
    assert orders[1] == order and sorted(order) == list(range(n)) and n > 100
    first = order[: n // 10]  # what limit_val_batches=0.1 validates
    assert min(first) < n // 4 and max(first) > 3 * n // 4
    batch = next(iter(dm.val_dataloader()))
    expected = torch.stack([dm.ds_valid[i]["input_ids"] for i in order[:8]])  # windows of max_seq_len + 1
    assert torch.equal(batch["input_ids"], expected[:, :-1]) and torch.equal(batch["labels"], expected[:, 1:])  # the loader yields the windows in that order


# -- cache ---------------------------------------------------------------------------------------------------------


def _module(tmp_path, **kwargs) -> TextDataModule:
    defaults = {
        "source": "sample",
        "dataset_dir": str(tmp_path),
        "max_seq_len": 128,
        "max_documents": 12,
        "num_workers": 0,
    }
    return WikipediaDataModule(**{**defaults, **kwargs})


def test_cache_key_covers_every_setting_that_changes_the_data(tmp_path):
    base = _module(tmp_path).cache_dir
    changed = [
        {"tokenizer": "deepmind/language-perceiver", "add_special_tokens": True},
        {"add_eos_token": True},
        {"max_documents": 13},
        {"valid_every": 5},
        {"task": "clf"},
        {"static_masking": True},
        {"source": str(tmp_path)},
    ]
    dirs = {str(_module(tmp_path, **kw).cache_dir) for kw in changed}
    assert len(dirs) == len(changed) and str(base) not in dirs
    assert WikiTextDataModule(source="sample", dataset_dir=str(tmp_path)).cache_dir.name.startswith("wikitext-")
    assert WikiTextDataModule(config="wikitext-2-raw-v1").cache_dir != WikiTextDataModule().cache_dir
    assert WikiTextDataModule(revision="abc").cache_dir != WikiTextDataModule().cache_dir
    # windows are cut at read time: these settings reuse the same tokens
    for kw in ({"max_seq_len": 64}, {"task": "clm"}, {"batch_size": 3}, {"random_train_shift": True}):
        assert _module(tmp_path, **kw).cache_dir == base
    # static masks depend on the window length and mask settings
    static = _module(tmp_path, static_masking=True).cache_dir
    for kw in ({"max_seq_len": 64}, {"mask_prob": 0.2}, {"mask_words": False}, {"seed": 1}):
        assert _module(tmp_path, static_masking=True, **kw).cache_dir != static


def test_local_source_key_tracks_file_changes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("one two three")
    (src / "b.txt").write_text("four five")
    before = _module(tmp_path, source=str(src)).cache_dir
    (src / "a.txt").write_text("one two three four")
    assert _module(tmp_path, source=str(src)).cache_dir != before


def test_second_setup_reuses_cache(tmp_path, caplog):
    first = _module(tmp_path)
    first.setup()
    assert first.cache_was_built
    mtime = (first.cache_dir / "train.tokens.bin").stat().st_mtime_ns
    second = _module(tmp_path)
    with caplog.at_level("INFO", logger="perceiver.data.text.common"):
        second.setup()
    assert not second.cache_was_built and "reusing preprocessed data" in caplog.text
    assert (second.cache_dir / "train.tokens.bin").stat().st_mtime_ns == mtime
    manifest = json.loads((second.cache_dir / "manifest.json").read_text())
    assert manifest["splits"]["train"]["num_documents"] == 12
    assert manifest["settings"]["source"]["source"] == "sample"


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "bad_manifest"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage, caplog):
    dm = _module(tmp_path)
    dm.setup()
    expected = dm.ds_train[2]["input_ids"].clone()
    tokens, manifest = dm.cache_dir / "train.tokens.bin", dm.cache_dir / "manifest.json"
    if damage == "truncate":
        os.truncate(tokens, tokens.stat().st_size - 10)
    elif damage == "flip":
        data = bytearray(tokens.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tokens.write_bytes(bytes(data))
    elif damage == "no_manifest":
        manifest.unlink()
    else:
        manifest.write_text("{ not json")
    again = _module(tmp_path)
    with caplog.at_level("WARNING"):
        again.setup()
    assert again.cache_was_built and "corrupt" in caplog.text
    assert torch.equal(again.ds_train[2]["input_ids"], expected)


def test_interrupted_build_leaves_no_cache(tmp_path, monkeypatch):
    dm = _module(tmp_path)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("perceiver.data.text.preprocess.file_checksum", fail)
    with pytest.raises(KeyboardInterrupt):
        dm.setup()
    assert not dm.cache_dir.exists() and not list((tmp_path / "preproc").iterdir())
    monkeypatch.undo()
    _module(tmp_path).setup()


KILLED_BUILD = """
import sys, time
from pathlib import Path
import perceiver.data.text.preprocess as pre
from perceiver.data.text import WikipediaDataModule

write_split = pre._write_split

def write_then_hang(out, split, *args):
    result = write_split(out, split, *args)  # a complete split file, the manifest not yet written
    Path(sys.argv[2]).write_text(str(out))
    time.sleep(600)
    return result

pre._write_split = write_then_hang
WikipediaDataModule(source="sample", dataset_dir=sys.argv[1], max_seq_len=128, max_documents=12, num_workers=0).setup()
"""


@pytest.mark.slow
def test_killed_build_leaves_nothing_that_is_trusted(tmp_path):
    """SIGKILL in the middle of preprocessing (no cleanup code runs): the next run neither reads nor keeps the
    half-written directory, and builds the same data as an uninterrupted run."""
    import signal
    import subprocess
    import sys

    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(tmp_path), str(ready)])
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), "the build never reached its first split"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    half = Path(ready.read_text())
    assert half.is_dir() and (half / "train.tokens.bin").stat().st_size > 0 and not (half / "manifest.json").exists()
    dm = _module(tmp_path)
    assert not dm.cache_dir.exists()  # nothing was renamed into place
    dm.setup()
    assert dm.cache_was_built and not half.exists()  # rebuilt, and the abandoned directory removed
    fresh = _module(tmp_path / "fresh")
    fresh.setup()
    assert torch.equal(dm.ds_train[3]["input_ids"], fresh.ds_train[3]["input_ids"])
    assert [p.name for p in (tmp_path / "preproc").iterdir()] == [dm.cache_dir.name]


# -- offline hub -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("var", ["HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"])
def test_hub_offline_env_fails_fast(tmp_path, monkeypatch, var):
    monkeypatch.setenv(var, "1")
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match=r"--data\.source=sample.*--data\.source=/path/to/dir"):
        WikiTextDataModule(dataset_dir=str(tmp_path), max_seq_len=128).setup()
    assert time.monotonic() - start < 5


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("endpoint", ["closed", "silent", "unroutable"])
def test_unreachable_hub_fails_fast(tmp_path, monkeypatch, endpoint):
    """A refused connection, a server that never answers (probe timeout, 3 s) and an unroutable address."""
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections into the backlog, never answers
        urls = {
            "closed": f"http://127.0.0.1:{_closed_port()}",
            "silent": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "unroutable": "http://10.255.255.1:81",
        }
        monkeypatch.setenv("HF_ENDPOINT", urls[endpoint])
        start = time.monotonic()
        with pytest.raises(HubUnreachableError, match=r"unreachable.*--data\.source=sample"):
            WikipediaDataModule(dataset_dir=str(tmp_path), max_seq_len=128).setup()
        assert time.monotonic() - start < 5


def test_hub_source_uses_existing_cache_offline(tmp_path, monkeypatch):
    """Once preprocessed, a hub source needs no network: the cache key holds the dataset id and revision."""
    dm = WikiTextDataModule(dataset_dir=str(tmp_path), max_seq_len=128, num_workers=0)
    monkeypatch.setattr(dm, "load_hub_source", lambda: _module(tmp_path).load_source())
    dm.setup()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    again = WikiTextDataModule(dataset_dir=str(tmp_path), max_seq_len=128, num_workers=0)
    again.setup()
    assert not again.cache_was_built and len(again.ds_train) == len(dm.ds_train)


def test_cli_signature_has_documented_arguments():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(WikiTextDataModule, "data")
    cfg = parser.parse_args(["--data.source=sample", "--data.task=clm", "--data.config=wikitext-2-raw-v1"])
    assert cfg.data.max_seq_len == 4096 and cfg.data.padding_side is None and cfg.data.config == "wikitext-2-raw-v1"
    help_text = parser.format_help()
    assert "Whole words" in help_text or "whole words" in help_text
    assert "--data.random_train_shift" in help_text and "--data.preproc_workers" in help_text


def _serve(status: int):
    """A Hub stand-in answering ``status``; a redirect (3xx) leads to a page that answers 200."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200 if self.path == "/elsewhere" else status)
            self.send_header("Location", "/elsewhere")
            self.end_headers()

        do_GET = do_HEAD  # redirects are followed with GET

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize(("status", "reachable"), [(200, True), (307, True), (403, True), (404, False), (502, False)])
def test_hub_probe_status_handling(monkeypatch, status, reachable):
    from perceiver.data.text.sources import check_hub_reachable

    server = _serve(status)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        if reachable:
            check_hub_reachable("wikimedia/wikipedia")  # returns, no exception
        else:
            with pytest.raises(HubUnreachableError, match=f"HTTP {status}"):
                check_hub_reachable("wikimedia/wikipedia")
    finally:
        server.shutdown()
        server.server_close()


def test_offline_env_set_before_import_fails_fast(tmp_path):
    """With the variable set at start-up, ``datasets`` itself is asked (it may have the data cached) and fails fast.

    The subprocess loads ``sources.py`` alone (it needs only ``datasets``) to keep interpreter start-up short.
    """
    import subprocess
    import sys

    from perceiver.data.text import sources

    code = (
        "import importlib.util, time\n"
        f"spec = importlib.util.spec_from_file_location('sources', {sources.__file__!r})\n"
        "sources = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(sources)\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    sources.load_hub('Salesforce/wikitext', 'wikitext-2-raw-v1', None)\n"
        "except sources.HubUnreachableError as e:\n"
        "    print('FAILED-AFTER', time.monotonic() - start, e)\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert "FAILED-AFTER" in out.stdout and "--data.source=sample" in out.stdout, out.stderr[-2000:]
    assert float(out.stdout.split()[1]) < 5


def test_dataset_and_collator_pickle_small(sample_mlm):
    """Worker processes receive file paths, not token arrays, and a working collator."""
    import pickle

    ds = sample_mlm.ds_train
    ds[0]  # opens the memmap
    assert len(pickle.dumps(ds)) < 2_000
    collator = pickle.loads(pickle.dumps(sample_mlm.collator))
    items = [ds[i] for i in range(4)]
    torch.manual_seed(1)
    a = collator(items)
    torch.manual_seed(1)
    b = sample_mlm.collator(items)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_hub_sources_with_a_reachable_hub(tmp_path, monkeypatch):
    """Dataset ids, configs and revisions passed to ``datasets.load_dataset``, and how splits are formed."""
    import datasets

    calls = []

    def fake_load_dataset(path, name, revision=None, **kwargs):
        calls.append((path, name, revision))
        rows = {"text": [f"row {i} text" for i in range(30)]}
        splits = ("train",) if path == "wikimedia/wikipedia" else ("train", "validation", "test")
        return datasets.DatasetDict({k: datasets.Dataset.from_dict(rows) for k in splits})

    server = _serve(200)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    try:
        wiki = WikipediaDataModule(dataset_dir=str(tmp_path), max_seq_len=16, revision="v1")
        wiki.setup()
        text = WikiTextDataModule(dataset_dir=str(tmp_path), max_seq_len=16, config="wikitext-2-raw-v1")
        text.setup()
    finally:
        server.shutdown()
        server.server_close()
    assert calls == [("wikimedia/wikipedia", "20231101.en", "v1"), ("Salesforce/wikitext", "wikitext-2-raw-v1", None)]
    assert wiki.manifest["splits"]["validation"]["num_documents"] == 3  # every 10th of 30 rows
    assert text.manifest["splits"]["validation"]["num_documents"] == 30  # WikiText's own split
    assert wiki.manifest["settings"]["source"] == {
        "source": "hub",
        "path": "wikimedia/wikipedia",
        "name": "20231101.en",
        "revision": "v1",
    }
