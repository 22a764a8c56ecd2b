#!/usr/bin/env bash
# Puts the code on every worker of a TPU VM / pod slice and installs the environment there; safe to rerun.
#
#   bash launch/tpu_install.sh --name estrnn-v4 --zone us-central2-b                  # ship this checkout
#   bash launch/tpu_install.sh --name estrnn-v4 --zone us-central2-b --repo URL --ref main   # git clone
#
# On each worker: code in ~/estrnn_jax, Python environment in ~/estrnn_venv (see launch/remote_setup.sh).

# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: bash launch/tpu_install.sh --name NAME --zone ZONE [--project PROJECT] [--repo URL [--ref REF]]
                                  [--dry-run]

Copies the code to ~/estrnn_jax on every worker and installs requirements.txt + jax[tpu] into
~/estrnn_venv. Rerunning updates the code and installs only what changed. Refuses while a training job
started by tpu_run.sh is running on a worker (stop it first with tpu_run.sh --stop).

  --name, --zone, --project   the TPU VM (env TPU_NAME, TPU_ZONE, TPU_PROJECT)
  --repo URL                  git clone URL on the workers instead of copying this checkout
                              (tracked and untracked-but-not-ignored files, i.e. your working tree)
  --ref REF                   branch, tag or commit to check out with --repo (default: main)
  --dry-run                   print the commands instead of running them (or DRY_RUN=1)
EOF
}

REPO_URL=""
REF=main
while (($#)); do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  parse_common_flag "$@"
  if ((CONSUMED)); then shift "${CONSUMED}"; continue; fi
  case $1 in
    --repo) need_value "$@"; REPO_URL=$2; shift 2 ;;
    --ref) need_value "$@"; REF=$2; shift 2 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
require_tpu_flags
location_flags

# Refuse to swap the code under a running job (first install: the script is not there yet).
IDLE_CHECK='if [ -f ~/estrnn_jax/launch/remote_train.sh ]; then'
IDLE_CHECK+=' bash ~/estrnn_jax/launch/remote_train.sh check-idle; fi'
readonly IDLE_CHECK
readonly SETUP='bash ~/estrnn_jax/launch/remote_setup.sh'

if [[ -n ${REPO_URL} ]]; then
  repo=$(shell_quote "${REPO_URL}")
  ref=$(shell_quote "${REF}")
  ssh_all_workers "set -e; ${IDLE_CHECK}; \
if [ ! -d ~/estrnn_jax/.git ]; then rm -rf ~/estrnn_jax; git clone --quiet ${repo} ~/estrnn_jax; fi; \
git -C ~/estrnn_jax fetch --quiet origin ${ref}; git -C ~/estrnn_jax checkout --quiet --force FETCH_HEAD; \
${SETUP}"
else
  git -C "${REPO_ROOT}" rev-parse --git-dir >/dev/null 2>&1 ||
    die "${REPO_ROOT} is not a git checkout; pass --repo URL to clone on the workers instead"
  tarball="${TMPDIR:-/tmp}/estrnn_jax_${NAME}.tgz"
  # Tracked files plus new files that .gitignore does not exclude (no .venv, no workdirs); files deleted
  # but not yet committed are skipped with a warning.
  # shellcheck disable=SC2016  # $1 and $2 belong to the inner shell.
  pack='git -C "$1" ls-files -z --cached --others --exclude-standard |'
  # shellcheck disable=SC2016
  pack+=' tar -C "$1" --null --ignore-failed-read -T - -czf "$2"'
  run bash -c "${pack}" _ "${REPO_ROOT}" "${tarball}"
  run gcloud compute tpus tpu-vm scp "${tarball}" "${NAME}:estrnn_jax.tgz" "${LOCATION_FLAGS[@]}" --worker=all
  run rm -f "${tarball}"
  ssh_all_workers "set -e; ${IDLE_CHECK}; \
rm -rf ~/estrnn_jax.new; mkdir -p ~/estrnn_jax.new; tar -xzf ~/estrnn_jax.tgz -C ~/estrnn_jax.new; \
rm -rf ~/estrnn_jax; mv ~/estrnn_jax.new ~/estrnn_jax; rm -f ~/estrnn_jax.tgz; \
${SETUP}"
fi
log "next: bash launch/tpu_run.sh --name ${NAME} --zone ${ZONE} --config configs/X.py" \
  "--workdir gs://BUCKET/DIR"
