#!/usr/bin/env bash
# Create benchmarks/.venv-perceiver-io with the PREDECESSOR library perceiver-io 0.11.0.
#
# perceiver-io's own package is also called `perceiver`, so always run its scripts with
# this venv's python and with a cwd / PYTHONPATH that does NOT contain the repo root
# (e.g. `cd /tmp && .../bin/python -P script.py`), or our package shadows it.
#
# Idempotent: re-running re-checks the installs and the imports.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${HERE}/.venv-perceiver-io"
PY="${PYTHON:-python3.11}"

if [ ! -x "${VENV}/bin/python" ]; then
    "${PY}" -m venv "${VENV}"
fi
VPY="${VENV}/bin/python"
PIP=("${VPY}" -m pip install --disable-pip-version-check -q)

# 1. torch first, pinned to the local CPU wheel (a loose torch requirement would pull a CUDA build).
"${PIP[@]}" "torch==2.13.0"

# 2. Hand-picked deps inside perceiver-io 0.11's ranges (its metadata says python<3.11 and pins
#    tokenizers<0.13 / cchardet / tensorboard, hence --no-deps below; none of those is needed to
#    build, train-step, checkpoint and convert the text models).
#    transformers 4.30.2 is the release of 0.11's time: with it save_pretrained writes the same
#    config.json keys as 0.11-era hub models (torch_dtype, is_decoder), and PreTrainedModel still
#    inherits GenerationMixin (from 4.50 on, 0.11's CLM `generate` raises AttributeError).
#    numpy is left unpinned: the pyarrow wheel that datasets pulls in needs numpy>=2.
"${PIP[@]}" \
    "torch==2.13.0" \
    "pytorch-lightning>=2,<3" \
    "torchmetrics<0.10" \
    "einops<0.5" \
    "fairscale" \
    "torch-optimizer" \
    "transformers==4.30.2" \
    "tokenizers==0.13.3" \
    "huggingface-hub<1" \
    "datasets>=2,<3" \
    "setuptools<81" \
    "psutil" \
    "memray" \
    "numpy" \
    "safetensors" \
    "jsonargparse[signatures]>=4.18,<5" \
    "pretty_midi"  # 0.11's symbolic audio package imports it (tests/fixtures/predecessor: sam)

# 3. perceiver-io itself, without its (over-tight / unresolvable) requirement pins.
"${PIP[@]}" --no-deps --ignore-requires-python "perceiver-io==0.11.0"

# 4. Verify (from /tmp with -P so the repo's own `perceiver` package cannot shadow it).
cd /tmp
"${VPY}" -P - <<'PYEOF'
import perceiver, torch
assert "site-packages" in perceiver.__file__, perceiver.__file__
from perceiver.model.text.mlm import MaskedLanguageModel, MaskedLanguageModelConfig  # noqa: F401
from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig  # noqa: F401
print("perceiver-io OK:", perceiver.__file__, "torch", torch.__version__)
PYEOF
