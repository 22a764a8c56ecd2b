# shellcheck shell=bash
# shellcheck disable=SC2034  # REPO_ROOT, CONSUMED, STATE, ... are read by the scripts that source this.
# Shared helpers of the launch/ scripts: flag parsing, dry-run printing, gcloud TPU wrappers.
# Sourced, never run. Every script calls `usage` (its own) and these helpers.
#
# Dry run (`--dry-run` or DRY_RUN=1): every command that would change or query anything is printed as one
# line `+ cmd arg ...` on stdout, quoted so it can be pasted into a shell, and not run. Messages go to stderr.

set -euo pipefail

LAUNCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "${LAUNCH_DIR}")"
readonly LAUNCH_DIR REPO_ROOT

# Settings shared by the TPU scripts; flags override the environment.
DRY_RUN="${DRY_RUN:-0}"
NAME="${TPU_NAME:-}"
ZONE="${TPU_ZONE:-}"
PROJECT="${TPU_PROJECT:-}"
POLL_SECONDS="${POLL_SECONDS:-30}"

log() { echo "[$(basename "$0")] $*" >&2; }
die() { log "error: $*"; exit 1; }

# A usage error: the message, the script's usage text, exit status 2.
usage_error() {
  log "error: $*"
  usage >&2
  exit 2
}

# Prints one argument quoted for a POSIX shell: bare when safe, else in single quotes.
shell_quote() {
  if [[ -n $1 && $1 =~ ^[A-Za-z0-9_./:=@%+,^-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Prints a command line, every argument quoted.
quote_cmd() {
  local out="" arg
  for arg in "$@"; do
    out+="${out:+ }$(shell_quote "${arg}")"
  done
  printf '%s' "${out}"
}

is_dry_run() { [[ ${DRY_RUN} == 1 ]]; }

# Runs a command, or prints it in dry-run mode.
run() {
  if is_dry_run; then
    echo "+ $(quote_cmd "$@")"
  else
    "$@"
  fi
}

# Fails with a usage error when flag $1 has no value ($2).
need_value() {
  if [[ $# -lt 2 || $2 == --* ]]; then
    usage_error "$1 needs a value"
  fi
}

# Parses one flag common to the TPU scripts. Sets CONSUMED to the number of arguments used (0: not common).
# Callers split `--flag=value` into `--flag value` first.
parse_common_flag() {
  CONSUMED=0
  case $1 in
    --name) need_value "$@"; NAME=$2; CONSUMED=2 ;;
    --zone) need_value "$@"; ZONE=$2; CONSUMED=2 ;;
    --project) need_value "$@"; PROJECT=$2; CONSUMED=2 ;;
    --dry-run | --dry_run) DRY_RUN=1; CONSUMED=1 ;;
    -h | --help) usage; exit 0 ;;
  esac
}

require() {
  local flag=$1 value=$2
  [[ -n ${value} ]] || usage_error "${flag} is required"
}

require_tpu_flags() {
  require --name "${NAME}"
  require --zone "${ZONE}"
  [[ ${NAME} =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] ||
    usage_error "--name must be lowercase letters, digits and dashes, starting with a letter: '${NAME}'"
}

# `--zone=... [--project=...]`, the location flags of every gcloud TPU command.
location_flags() {
  LOCATION_FLAGS=("--zone=${ZONE}")
  if [[ -n ${PROJECT} ]]; then
    LOCATION_FLAGS+=("--project=${PROJECT}")
  fi
}

# Looks up TPU VM ($1 = tpu-vm) or queued resource ($1 = queued-resources) $NAME: returns 0 and sets STATE
# (e.g. READY, ACTIVE, PREEMPTED) if it exists, returns 1 if it does not. Any other gcloud failure (auth,
# wrong project) is fatal. In dry-run mode prints the query and assumes $2 (exists|missing).
resource_state() {
  local kind=$1 dry_run_answer=$2 format err
  STATE=""
  if [[ ${kind} == tpu-vm ]]; then format='value(state)'; else format='value(state.state)'; fi
  location_flags
  local cmd=(gcloud compute tpus "${kind}" describe "${NAME}" "${LOCATION_FLAGS[@]}" "--format=${format}")
  if is_dry_run; then
    echo "+ $(quote_cmd "${cmd[@]}")"
    if [[ ${dry_run_answer} == exists ]]; then
      log "dry run: assuming ${NAME} exists"
      STATE=UNKNOWN
      return 0
    fi
    log "dry run: assuming ${NAME} does not exist"
    return 1
  fi
  err="$(mktemp)"
  if STATE="$("${cmd[@]}" 2>"${err}")"; then
    rm -f "${err}"
    STATE="${STATE:-UNKNOWN}"
    return 0
  fi
  if grep -qiE 'NOT_FOUND|not found' "${err}"; then
    rm -f "${err}"
    return 1
  fi
  cat "${err}" >&2
  rm -f "${err}"
  die "could not query ${kind} ${NAME} in ${ZONE} (see the gcloud error above)"
}

# Runs a shell command line on every worker of TPU VM $NAME.
ssh_all_workers() {
  location_flags
  run gcloud compute tpus tpu-vm ssh "${NAME}" "${LOCATION_FLAGS[@]}" --worker=all "--command=$1"
}

# Sets ACCELERATOR_TYPE to TPU VM $NAME's accelerator type (e.g. v5litepod-8), asked from gcloud. In dry-run
# mode prints the query and assumes ${DRY_RUN_ACCELERATOR:-v5litepod-8}.
accelerator_type() {
  location_flags
  local cmd=(gcloud compute tpus tpu-vm describe "${NAME}" "${LOCATION_FLAGS[@]}" '--format=value(acceleratorType)')
  if is_dry_run; then
    echo "+ $(quote_cmd "${cmd[@]}")"
    ACCELERATOR_TYPE="${DRY_RUN_ACCELERATOR:-v5litepod-8}"
    log "dry run: assuming accelerator type ${ACCELERATOR_TYPE}"
    return 0
  fi
  ACCELERATOR_TYPE="$("${cmd[@]}")" || die "could not ask gcloud for the accelerator type of ${NAME} (pass --accelerator)"
  [[ -n ${ACCELERATOR_TYPE} ]] || die "gcloud reported no accelerator type for ${NAME} (pass --accelerator)"
}

# Plans a run before starting it: python -m estrnn_jax.plan --config $1 --target <$2, else asked from gcloud>
# --programs=train,eval --must_fit, with the --config.* overrides among the remaining arguments (those of
# estrnn_jax.main). Stops the script (exit 1) when the run does not fit or cannot be planned. Runs
# `${PYTHON:-python3}` in this checkout; in dry-run mode prints the command instead.
plan_run() {
  local config=$1 arg
  ACCELERATOR_TYPE=$2
  shift 2
  [[ -n ${ACCELERATOR_TYPE} ]] || accelerator_type
  local cmd=("${PYTHON:-python3}" -m estrnn_jax.plan "--config=${config}" "--target=${ACCELERATOR_TYPE}"
             --programs=train,eval --must_fit)
  for arg in "$@"; do
    if [[ ${arg} == --config.* ]]; then cmd+=("${arg}"); fi
  done
  if is_dry_run; then
    echo "+ $(quote_cmd "${cmd[@]}")"
    return 0
  fi
  log "planning the run for ${ACCELERATOR_TYPE}: $(quote_cmd "${cmd[@]}")"
  local status=0
  (cd "${REPO_ROOT}" && "${cmd[@]}") || status=$?
  case ${status} in
    0) log "plan: the run fits on ${ACCELERATOR_TYPE}" ;;
    3) die "plan: the run does not fit on ${ACCELERATOR_TYPE}; nothing was started (see the plan's fix above)" ;;
    *) die "plan: could not plan the run for ${ACCELERATOR_TYPE} (exit status ${status}); nothing was started" ;;
  esac
}
