#!/usr/bin/env bash
# Installs estrnn_jax's Python environment on this machine; safe to rerun (only missing pieces are added).
# tpu_install.sh runs it on every TPU worker; on a GPU host run it yourself with --jax_extra cuda12.
#
#   bash launch/remote_setup.sh [--venv DIR] [--jax_extra tpu|cuda12|cuda13|cpu] [--dry-run]

# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: bash launch/remote_setup.sh [--venv DIR] [--jax_extra EXTRA] [--python VERSION] [--dry-run]

Creates a Python virtual environment (default ~/estrnn_venv, Python 3.11 fetched by uv if the system has
an older one) and installs requirements.txt plus "jax[EXTRA]" at the pinned jax version.

  --venv DIR          virtual environment to create or update (env ESTRNN_VENV; default ~/estrnn_venv)
  --jax_extra EXTRA   jax extra: tpu (default), cuda12, cuda13 or cpu
  --python VERSION    Python version of a new environment (default 3.11; jax 0.10 needs >= 3.11)
  --dry-run           print the commands instead of running them (or DRY_RUN=1)
EOF
}

VENV="${ESTRNN_VENV:-${HOME}/estrnn_venv}"
JAX_EXTRA=tpu
PYTHON_VERSION=3.11
while (($#)); do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  case $1 in
    --venv) need_value "$@"; VENV=$2; shift 2 ;;
    --jax_extra | --jax-extra) need_value "$@"; JAX_EXTRA=$2; shift 2 ;;
    --python) need_value "$@"; PYTHON_VERSION=$2; shift 2 ;;
    --dry-run | --dry_run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
case ${JAX_EXTRA} in
  tpu | cuda12 | cuda13 | cpu) ;;
  *) usage_error "--jax_extra must be tpu, cuda12, cuda13 or cpu, not '${JAX_EXTRA}'" ;;
esac

REQUIREMENTS="${REPO_ROOT}/requirements.txt"
[[ -f ${REQUIREMENTS} ]] || die "${REQUIREMENTS} not found; is the repository complete?"
JAX_VERSION="$(sed -n 's/^jax==\([^ ;#]*\).*/\1/p' "${REQUIREMENTS}")"
[[ -n ${JAX_VERSION} ]] || die "${REQUIREMENTS} has no 'jax==VERSION' pin"

# uv installs Python itself when the system Python is too old (TPU images ship Ubuntu 22.04's 3.10).
export PATH="${HOME}/.local/bin:${PATH}"
if ! command -v uv >/dev/null 2>&1; then
  if python3 -m pip --version >/dev/null 2>&1; then
    run python3 -m pip install --user --quiet --upgrade uv
  else
    run bash -c 'curl -LsSf https://astral.sh/uv/install.sh | sh'
  fi
fi

if [[ -x ${VENV}/bin/python ]]; then
  log "using the existing environment ${VENV}"
else
  run uv venv --seed --python "${PYTHON_VERSION}" "${VENV}"
fi

log "installing requirements.txt and jax[${JAX_EXTRA}]==${JAX_VERSION} into ${VENV}"
run uv pip install --python "${VENV}/bin/python" -r "${REQUIREMENTS}" "jax[${JAX_EXTRA}]==${JAX_VERSION}"
# Import check only: touching the TPU here would wait for every worker of a pod slice.
check='import estrnn_jax, flax, jax, optax, orbax.checkpoint; print("environment ok: jax", jax.__version__)'
run env PYTHONPATH="${REPO_ROOT}" "${VENV}/bin/python" -c "${check}"
