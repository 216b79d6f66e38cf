import torch
import torch.nn.functional as F

from configs import mlm_config
from perceiver.model.text.mlm import MaskedLanguageModel, MaskedLanguageModelConfig, fill_masks
from perceiver.model.text.tokenizer import load_tokenizer


def small_config(**kwargs) -> MaskedLanguageModelConfig:
    """The small MLM of ``tests/configs.py`` with two blocks, two cross-attention layers and unshared weights."""
    return mlm_config(
        encoder=dict(max_seq_len=48, num_cross_attention_qk_channels=16, num_self_attention_layers_per_block=2,
                     num_self_attention_blocks=2, num_cross_attention_layers=2,
                     first_self_attention_block_shared=False),
        decoder=dict(max_seq_len=48, cross_attention_residual=False),
        num_latent_channels=24, **kwargs,
    )


def test_forward_shapes_and_short_inputs():
    torch.manual_seed(0)
    model = MaskedLanguageModel(small_config()).eval()
    assert model(torch.randint(0, 262, (3, 48))).shape == (3, 48, 262)
    assert model(torch.randint(0, 262, (2, 17))).shape == (2, 17, 262)


def test_padding_does_not_change_logits():
    torch.manual_seed(0)
    model = MaskedLanguageModel(small_config()).eval()
    x = torch.randint(6, 262, (1, 20))
    padded = torch.cat([x, torch.zeros(1, 10, dtype=torch.long)], dim=1)
    pad_mask = padded == 0
    torch.testing.assert_close(model(padded, pad_mask)[:, :20], model(x), atol=1e-5, rtol=1e-5)


def test_activation_checkpointing_gives_same_loss_and_gradients():
    x = torch.randint(6, 262, (2, 32))
    labels = torch.randint(6, 262, (2, 32))
    results = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = MaskedLanguageModel(small_config(activation_checkpointing=ckpt)).train()
        loss = F.cross_entropy(model(x).flatten(0, 1), labels.flatten())
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (l0, g0), (l1, g1) = results
    torch.testing.assert_close(l0, l1)
    assert g0.keys() == g1.keys()
    for name in g0:
        torch.testing.assert_close(g0[name], g1[name], atol=1e-6, rtol=1e-5, msg=name)


def test_freeze_encoder():
    config = small_config()
    config.encoder.freeze = True
    model = MaskedLanguageModel(config)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for n, p in model.decoder.named_parameters())


def test_fill_masks_replaces_only_masked_bytes():
    torch.manual_seed(0)
    model = MaskedLanguageModel(small_config())
    out = fill_masks(model, load_tokenizer(), ["The cat [MASK][MASK]t on", "ab"])
    assert out[1] == "ab"
    assert out[0].startswith("The cat ") and out[0].endswith("t on")
    assert "[MASK]" not in out[0]
