"""Held-out evaluation of the CLM (``perceiver.model.text.clm.evaluate``): windows score every target exactly once,
bits per byte equal the float64 cross-entropy computed by hand and the validation metric of training, and the
CLI's ``evaluate`` reads a directory of texts."""

from __future__ import annotations

import json
import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from perceiver.model.text.clm.evaluate import Window, bits_per_byte, score_ids, score_text, windows
from perceiver.model.text.clm.lightning import LitCausalLanguageModel
from perceiver.model.text.tokenizer import load_tokenizer
from perceiver.scripts.text import clm as clm_script

TEXT = ("The Perceiver AR model maps a long prefix into a few latents. Ünïcödé bytes count as bytes: "
        "naïve café — 東京. ") * 3


def tiny_lit(**kwargs) -> LitCausalLanguageModel:
    torch.manual_seed(0)
    args = dict(vocab_size=262, max_seq_len=48, max_latents=16, num_channels=32, num_heads=2,
                num_self_attention_layers=2, cross_attention_dropout=0.5)
    return LitCausalLanguageModel(**{**args, **kwargs}).eval()


@pytest.mark.parametrize("max_seq_len,num_latents", [(8, 8), (8, 3), (10, 4), (32, 1)])
@pytest.mark.parametrize("stride", [None, 1, 2, 3])
def test_windows_score_every_target_exactly_once(max_seq_len, num_latents, stride):
    if stride is not None and stride > num_latents:
        return
    for num_tokens in range(0, 40):
        spans = windows(num_tokens, max_seq_len, num_latents, stride)
        scored = [t for w in spans for t in range(w.end - w.num_scored + 1, w.end + 1)]
        assert scored == list(range(1, num_tokens)), (num_tokens, spans)  # each target once, in order
        for w in spans:
            assert 0 <= w.start < w.end <= num_tokens - 1 and w.end - w.start <= max_seq_len
            assert 0 < w.num_scored <= w.num_latents <= min(num_latents, w.end - w.start)
            assert w.prefix_len >= 0
            if w.end - w.start == max_seq_len:  # a full window is split as in training: prefix N - L, L latents
                assert w.prefix_len == max_seq_len - num_latents
        for w in spans[1:]:
            assert w.num_scored <= (stride or num_latents)


def test_windows_reject_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        windows(100, 16, 4, stride=5)
    with pytest.raises(ValueError, match="num_latents"):
        windows(100, 16, 17)


@pytest.mark.parametrize("stride", [None, 5])
def test_bits_per_byte_equal_float64_cross_entropy_by_hand(stride):
    lit = tiny_lit()
    tok = load_tokenizer()
    ids = torch.tensor(tok(TEXT, add_special_tokens=False)["input_ids"])
    assert len(ids) == len(TEXT.encode("utf-8")) > 2 * 48  # byte tokens; several full windows
    n, num_latents, step = 48, 16, stride or 16

    # by hand, in float64: targets 1..L from the first L inputs, then each window of at most N inputs ending
    # `step` further scores its last `step` targets
    model64 = tiny_lit().model.double().requires_grad_(False)
    nll, end, last = [], 0, len(ids) - 1
    while end < last:
        new_end = min(num_latents, last) if end == 0 else min(end + step, last)
        x = ids[max(0, new_end - n) : new_end]
        num_lat = min(num_latents, len(x))
        logp = F.log_softmax(model64(x[None], prefix_len=len(x) - num_lat)[0], dim=-1)  # (num_lat, V), float64
        targets = ids[end + 1 : new_end + 1]
        nll.append(-logp[-len(targets):].gather(1, targets[:, None]).squeeze(1))
        end = new_end
    nll = torch.cat(nll)
    assert len(nll) == len(ids) - 1
    expected = float(nll.mean()) / math.log(2)

    got = score_text(lit.model, tok, TEXT, stride=stride, batch_size=3)
    assert got.num_tokens == got.num_bytes == len(ids) - 1
    assert got.bits_per_byte == pytest.approx(expected, rel=1e-5)
    assert bits_per_byte(lit.model, tok, TEXT, stride=stride) == pytest.approx(expected, rel=1e-5)


def test_a_full_window_is_scored_like_validation():
    """Bits of the window (0, N) equal the validation loss of the batch (inputs ids[:N], labels ids[1:N+1])."""
    lit = tiny_lit()
    ids = torch.randint(6, 262, (48 + 1,), generator=torch.Generator().manual_seed(1))
    assert windows(len(ids), 48, 16)[-1] == Window(0, 48, 16, 16)
    bits_full, n_full = score_ids(lit.model, ids)
    bits_short, n_short = score_ids(lit.model, ids[: 48 + 1 - 16])  # the same windows but the last
    with torch.no_grad():
        loss, metrics = lit.loss_and_metrics({"input_ids": ids[None, :48], "labels": ids[None, 1:]})
    assert n_full - n_short == 16
    assert (bits_full - bits_short) / 16 == pytest.approx(float(metrics["bpb"]), rel=1e-5)


def test_documents_are_scored_separately_and_summed():
    lit, tok = tiny_lit(), load_tokenizer()
    docs = [TEXT, "Short one.", "x"]  # "x" has no target
    total = score_text(lit.model, tok, docs)
    parts = [score_text(lit.model, tok, d) for d in docs]
    assert total.num_bytes == sum(len(d.encode()) - 1 for d in docs)
    assert total.bits == pytest.approx(sum(p.bits for p in parts))
    assert parts[2].num_tokens == 0 and math.isnan(parts[2].bits_per_byte)
    assert lit.model.training is False


def save_checkpoint(lit: LitCausalLanguageModel, path) -> None:
    torch.save({"state_dict": lit.state_dict(), "hyper_parameters": dict(lit.hparams),
                "pytorch-lightning_version": pl.__version__}, path)


def test_cli_evaluate_reads_a_directory(tmp_path, capsys):
    lit = tiny_lit()
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_checkpoint(lit, run / "checkpoints" / "final.ckpt")
    texts = tmp_path / "texts"
    (texts / "sub").mkdir(parents=True)
    (texts / "a.txt").write_text(TEXT)
    (texts / "sub" / "b.txt").write_text("Another English text, not in the training data.\n")
    (texts / "ignored.md").write_text("not a .txt file")

    out = clm_script.main(["evaluate", "--ckpt", str(run), "--texts", str(texts), "--json", str(tmp_path / "r.json"),
                           "--cpu_threads", str(torch.get_num_threads())])
    tok = load_tokenizer()
    docs = [TEXT, "Another English text, not in the training data.\n"]
    assert out["bits_per_byte"] == pytest.approx(bits_per_byte(lit.model, tok, docs), rel=1e-6)
    assert sorted(out["files"]) == [str(texts / "a.txt"), str(texts / "sub" / "b.txt")]
    assert json.loads((tmp_path / "r.json").read_text()) == out
    assert "total (2 files)" in capsys.readouterr().out

    with pytest.raises(FileNotFoundError, match="--texts"):
        clm_script.main(["evaluate", "--ckpt", str(run), "--texts", str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match="--ckpt"):
        clm_script.main(["evaluate", "--ckpt", str(tmp_path / "texts"), "--texts", str(texts)])
