#!/usr/bin/env bash
# Create benchmarks/.venv-perceiver-io with the PREDECESSOR library perceiver-io 0.11.0.
#
# perceiver-io's own package is also called `perceiver`, so always run its scripts with
# this venv's python and with a cwd / PYTHONPATH that does NOT contain the repo root
# (e.g. `cd /tmp && .../bin/python -P script.py`), or our package shadows it.
#
# Idempotent: re-running re-checks the installs and the imports.
#
# Environment:
#   PYTHON            the base interpreter (default python3.11; with PIO_TORCH=system: python3)
#   PIO_TORCH=system  use the torch that PYTHON already has (a GPU machine's CUDA build) instead of installing the
#                     CPU wheel: the venv sees PYTHON's packages and adds only what 0.11's models import
#   PIO_WHEELS=DIR    install offline from the wheels in DIR (benchmarks/gpu_check.sh --download-wheels DIR)
#   PIO_VENV          the venv (default benchmarks/.venv-perceiver-io)
# Arguments:
#   --print-requirements   print the requirements of this mode, one per line, and exit (no venv is made)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PIO_VENV:-${HERE}/.venv-perceiver-io}"
MODE="${PIO_TORCH:-pinned}"

if [ "${MODE}" = "system" ]; then
    PY="${PYTHON:-python3}"
    PYVER="${PIO_PY_VERSION:-$("${PY}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
    # tokenizers 0.13 (transformers 4.30.2's) has no wheels for Python >= 3.12. transformers 4.36.2 is the newest
    # release whose top level still exports what 0.11 imports (PerceiverLayer); with it 0.11 trains and generates
    # the same greedy tokens as with 4.30.2. pytorch-lightning comes from PYTHON (>=2,<3).
    if [ "$(printf '%s\n3.12\n' "${PYVER}" | sort -V | head -1)" = "3.12" ]; then
        TRANSFORMERS=("transformers==4.36.2" "tokenizers==0.15.2")
    else
        TRANSFORMERS=("transformers==4.30.2" "tokenizers==0.13.3")
    fi
    REQUIREMENTS=("torchmetrics<0.10" "einops<0.5" "fairscale==0.4.13" "huggingface-hub<1" "setuptools<81" "pillow"
                  "pretty_midi" "${TRANSFORMERS[@]}")
else
    PY="${PYTHON:-python3.11}"
    # torch first (below), pinned to the local CPU wheel (a loose torch requirement would pull a CUDA build).
    # Hand-picked deps inside perceiver-io 0.11's ranges (its metadata says python<3.11 and pins
    # tokenizers<0.13 / cchardet / tensorboard, hence --no-deps below; none of those is needed to
    # build, train-step, checkpoint and convert the text models).
    # transformers 4.30.2 is the release of 0.11's time: with it save_pretrained writes the same
    # config.json keys as 0.11-era hub models (torch_dtype, is_decoder), and PreTrainedModel still
    # inherits GenerationMixin (from 4.50 on, 0.11's CLM `generate` raises AttributeError).
    # numpy is left unpinned: the pyarrow wheel that datasets pulls in needs numpy>=2.
    # pillow: 0.11's image classifier module imports PIL (its MNIST data module's torchvision is not needed).
    # pretty_midi: 0.11's symbolic audio package imports it (tests/fixtures/predecessor: sam).
    REQUIREMENTS=("torch==2.13.0" "pytorch-lightning>=2,<3" "torchmetrics<0.10" "einops<0.5" "fairscale"
                  "torch-optimizer" "transformers==4.30.2" "tokenizers==0.13.3" "huggingface-hub<1" "datasets>=2,<3"
                  "setuptools<81" "psutil" "memray" "numpy" "safetensors" "pillow" "jsonargparse[signatures]>=4.18,<5"
                  "pretty_midi")
fi

if [ "${1:-}" = "--print-requirements" ]; then
    printf '%s\n' "${REQUIREMENTS[@]}" "perceiver-io==0.11.0"
    exit 0
fi

PIP_OPTS=(--disable-pip-version-check -q)
if [ -n "${PIO_WHEELS:-}" ]; then
    PIP_OPTS+=(--no-index --find-links "${PIO_WHEELS}")
fi

if [ ! -x "${VENV}/bin/python" ]; then
    if [ "${MODE}" = "system" ]; then
        "${PY}" -m venv --system-site-packages "${VENV}"
    else
        "${PY}" -m venv "${VENV}"
    fi
fi
VPY="${VENV}/bin/python"
PIP=("${VPY}" -m pip install "${PIP_OPTS[@]}")

if [ "${MODE}" = "system" ]; then
    # PYTHON's torch stays: a constraint forbids pip to replace it; fairscale is a source distribution, built
    # against that torch without an isolated (downloading) build environment
    CONSTRAINTS="${VENV}/torch-constraint.txt"
    "${VPY}" -c 'import torch; print("torch==" + torch.__version__)' >"${CONSTRAINTS}"
    "${PIP[@]}" --no-build-isolation -c "${CONSTRAINTS}" "${REQUIREMENTS[@]}"
else
    "${PIP[@]}" "torch==2.13.0"
    "${PIP[@]}" "${REQUIREMENTS[@]}"
fi

# perceiver-io itself, without its (over-tight / unresolvable) requirement pins.
"${PIP[@]}" --no-deps --ignore-requires-python "perceiver-io==0.11.0"

# Verify (from /tmp with -P so the repo's own `perceiver` package cannot shadow it).
cd /tmp
"${VPY}" -P - <<'PYEOF'
import perceiver, torch
assert "site-packages" in perceiver.__file__, perceiver.__file__
from perceiver.model.text.mlm import MaskedLanguageModel, MaskedLanguageModelConfig  # noqa: F401
from perceiver.model.text.clm import CausalLanguageModel, CausalLanguageModelConfig  # noqa: F401
from perceiver.model.vision.image_classifier import ImageClassifier, LitImageClassifier  # noqa: F401
print("perceiver-io OK:", perceiver.__file__, "torch", torch.__version__)
PYEOF
