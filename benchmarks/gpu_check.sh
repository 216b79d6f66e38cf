#!/usr/bin/env bash
# GPU readiness in one command: installs what it needs, then runs benchmarks/gpu_check.py, which prints one table
# (CLM 30.6M and MLM 201M training with bf16-mixed and torch.compile against perceiver-io 0.11, generation,
# the CLI with compute accounting, papermill on the GPU, FSDP on one GPU). About 8 minutes on an H100/H200.
#
#   bash benchmarks/gpu_check.sh                      # on a GPU machine; PyPI reachable, or --wheels DIR
#   bash benchmarks/gpu_check.sh --wheels DIR         # offline: install from the wheels in DIR
#   bash benchmarks/gpu_check.sh --dry-run            # tiny models on the CPU: the same stages (CI, seconds each)
#   bash benchmarks/gpu_check.sh --download-wheels DIR [--have FILE] [--python-version 3.12]
#                                                     # on a machine with PyPI: the wheels an offline GPU machine
#                                                     # needs (FILE: names of packages it already has, to leave out)
# Any other arguments go to gpu_check.py (--steps N, --budget S, --only STAGES, --out DIR).
#
# Environment: PYTHON, the interpreter whose torch sees the GPU (default python3); GPU_VENV, the venv made from it
# (default benchmarks/.venv-gpu; it sees PYTHON's packages, so torch is never reinstalled); PIO_PYTHON, an existing
# perceiver-io 0.11 interpreter (default: benchmarks/setup_perceiver_io.sh makes one from PYTHON's torch).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "${HERE}")"
DRY_RUN=0 INSTALL=auto WHEELS="" DOWNLOAD="" HAVE="" TARGET_PY="3.12" ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --install) INSTALL=yes ;;
        --no-install) INSTALL=no ;;
        --wheels) WHEELS="$(cd "$2" && pwd)"; shift ;;
        --download-wheels) DOWNLOAD="$2"; shift ;;
        --have) HAVE="$2"; shift ;;
        --python-version) TARGET_PY="$2"; shift ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done

# The requirements of our package for this check: pyproject's dependencies and workbench extra (the single source),
# without torch (the machine's) and JupyterLab (not needed headless).
requirements() {
    "${1}" - "${ROOT}/pyproject.toml" <<'PYEOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["workbench"]:
    if re.split(r"[<>=!~;\[ ]", req)[0].lower() not in ("torch", "jupyterlab"):
        print(req)
PYEOF
}

if [ -n "${DOWNLOAD}" ]; then
    PY="${PYTHON:-python3}"
    mkdir -p "${DOWNLOAD}"
    PLATFORM=(--only-binary=:all: --python-version "${TARGET_PY}" --implementation cp
              --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
              --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
    mapfile -t OURS < <(requirements "${PY}")
    REPORT="$(mktemp)"
    # resolve the whole closure for the target without downloading, then fetch what the GPU machine lacks
    "${PY}" -m pip install -q --dry-run --ignore-installed --report "${REPORT}" "${PLATFORM[@]}" "${OURS[@]}"
    mapfile -t PINS < <("${PY}" - "${REPORT}" "${HAVE}" <<'PYEOF'
import json, re, sys
have = set()
if sys.argv[2]:
    have = {re.split(r"[<>=! ]", l.strip())[0].lower().replace("_", "-") for l in open(sys.argv[2]) if l.strip()}
for item in json.load(open(sys.argv[1]))["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    key = name.lower().replace("_", "-")
    if key in have or key in ("torch", "triton") or key.startswith("nvidia-"):
        continue  # the GPU machine's own torch and CUDA libraries
    print(f"{name}=={version}")
PYEOF
)
    rm -f "${REPORT}"
    "${PY}" -m pip download -q --no-deps -d "${DOWNLOAD}" "${PLATFORM[@]}" "${PINS[@]}"
    # perceiver-io 0.11's venv: each requirement as a wheel; source-only ones (fairscale) are built here
    mapfile -t PIO < <(PIO_TORCH=system PIO_PY_VERSION="${TARGET_PY}" bash "${HERE}/setup_perceiver_io.sh" --print-requirements)
    for req in "${PIO[@]}"; do
        "${PY}" -m pip download -q --no-deps --ignore-requires-python -d "${DOWNLOAD}" "${PLATFORM[@]}" "${req}" \
            2>/dev/null || "${PY}" -m pip wheel -q --no-deps -w "${DOWNLOAD}" "${req}"
    done
    echo "wheels for Python ${TARGET_PY} in ${DOWNLOAD}: $(ls "${DOWNLOAD}" | wc -l) files, $(du -sh "${DOWNLOAD}" | cut -f1)"
    exit 0
fi

PIP_OPTS=(--disable-pip-version-check -q)
[ -n "${WHEELS}" ] && PIP_OPTS+=(--no-index --find-links "${WHEELS}")

if [ "${DRY_RUN}" = 1 ] && [ "${INSTALL}" != yes ]; then
    # the dry run uses this checkout's venv (it has everything) and perceiver-io's venv if there is one
    PY="${PYTHON:-${ROOT}/.venv/bin/python}"
    [ -x "${PY}" ] || PY=python3
    PIO_PY="${PIO_PYTHON:-${HERE}/.venv-perceiver-io/bin/python}"
else
    BASE="${PYTHON:-python3}"
    if [ "${DRY_RUN}" = 0 ]; then
        "${BASE}" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to torch in " + sys.executable)'
        command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    fi
    VENV="${GPU_VENV:-${HERE}/.venv-gpu}"
    [ -x "${VENV}/bin/python" ] || "${BASE}" -m venv --system-site-packages "${VENV}"
    PY="${VENV}/bin/python"
    "${PY}" -c 'import torch; print("torch==" + torch.__version__)' >"${VENV}/torch-constraint.txt"
    mapfile -t OURS < <(requirements "${PY}")
    echo "installing into ${VENV} (torch stays $(cat "${VENV}/torch-constraint.txt"))"
    "${PY}" -m pip install "${PIP_OPTS[@]}" -c "${VENV}/torch-constraint.txt" "${OURS[@]}"
    "${PY}" -m pip install "${PIP_OPTS[@]}" --no-deps --no-build-isolation -e "${ROOT}"
    if [ -n "${PIO_PYTHON:-}" ]; then
        PIO_PY="${PIO_PYTHON}"
    else
        PIO_VENV="${HERE}/.venv-perceiver-io-gpu"
        PYTHON="${BASE}" PIO_TORCH=system PIO_WHEELS="${WHEELS}" PIO_VENV="${PIO_VENV}" \
            bash "${HERE}/setup_perceiver_io.sh" || echo "perceiver-io 0.11 setup failed: its column stays empty"
        PIO_PY="${PIO_VENV}/bin/python"
    fi
fi

PIO_ARGS=()
[ -x "${PIO_PY}" ] && PIO_ARGS=(--pio-python "${PIO_PY}")
[ "${DRY_RUN}" = 1 ] && ARGS=(--dry-run "${ARGS[@]+"${ARGS[@]}"}")
cd "${ROOT}"
exec "${PY}" "${HERE}/gpu_check.py" "${PIO_ARGS[@]+"${PIO_ARGS[@]}"}" "${ARGS[@]+"${ARGS[@]}"}"
