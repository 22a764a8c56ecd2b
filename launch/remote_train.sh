#!/usr/bin/env bash
# Starts, stops and inspects the training job on this machine (one TPU worker); tpu_run.sh and tpu_logs.sh
# run it on every worker over ssh. The job runs detached (setsid + nohup), so it survives ssh drops;
# its output goes to ~/estrnn_logs/train_<hostname>.log and its process id to ~/estrnn_logs/train.pid.
#
#   bash launch/remote_train.sh start --config configs/X.py --workdir gs://B/D [--data_dir gs://B/tfds] \
#     [-- ARGS]
#   bash launch/remote_train.sh stop | status | check-idle | logs [--lines N] [--follow]

# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: bash launch/remote_train.sh COMMAND [options]

  start --config FILE --workdir DIR [--data_dir DIR] [--restart] [-- MAIN_ARGS...]
        start `python -m estrnn_jax.main --config FILE --workdir DIR MAIN_ARGS...` in the background, with
        TFDS_DATA_DIR=DIR; a no-op if it is already running (--restart: stop it first)
  stop        stop the job (SIGTERM to its process group, SIGKILL after STOP_TIMEOUT=60 s)
  status      say whether the job runs and show the end of its log
  check-idle  exit 1 if the job runs
  logs [--lines N] [--follow]   print the last N (100) lines of the log; --follow keeps streaming

Environment: ESTRNN_VENV (default ~/estrnn_venv), ESTRNN_LOG_DIR (default ~/estrnn_logs), DRY_RUN=1.
EOF
}

VENV="${ESTRNN_VENV:-${HOME}/estrnn_venv}"
LOG_DIR="${ESTRNN_LOG_DIR:-${HOME}/estrnn_logs}"
LOG_FILE="${LOG_DIR}/train_${HOSTNAME:-$(hostname)}.log"
PID_FILE="${LOG_DIR}/train.pid"
STOP_TIMEOUT="${STOP_TIMEOUT:-60}"
START_CHECK_SECONDS="${START_CHECK_SECONDS:-3}"  # a job that dies this early is reported as failed

# True if process $1 is alive and still our trainer (pids get reused; zombies have an empty cmdline).
is_trainer() {
  grep -q 'estrnn_jax.main' "/proc/$1/cmdline" 2>/dev/null
}

# Prints the pid of the running job and returns 0, or returns 1 when none runs.
running_pid() {
  local pid
  [[ -f ${PID_FILE} ]] || return 1
  pid="$(<"${PID_FILE}")"
  if [[ ! ${pid} =~ ^[0-9]+$ ]] || ! is_trainer "${pid}"; then return 1; fi
  echo "${pid}"
}

stop_job() {
  local pid i
  if ! pid="$(running_pid)"; then
    log "no training job running on ${HOSTNAME}"
    return 0
  fi
  log "stopping the training job (process group ${pid}) on ${HOSTNAME}"
  run kill -TERM -- "-${pid}"
  is_dry_run && return 0
  for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
    is_trainer "${pid}" || break
    sleep 0.2
  done
  if is_trainer "${pid}"; then
    log "still running after ${STOP_TIMEOUT} s; sending SIGKILL"
    kill -KILL -- "-${pid}" 2>/dev/null || true
  fi
  rm -f "${PID_FILE}"
}

start_job() {
  local config="" workdir="" data_dir="" restart=0 main_args=() pid
  while (($#)); do
    if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
    case $1 in
      --config) need_value "$@"; config=$2; shift 2 ;;
      --workdir) need_value "$@"; workdir=$2; shift 2 ;;
      --data_dir | --data-dir) need_value "$@"; data_dir=$2; shift 2 ;;
      --restart) restart=1; shift ;;
      --dry-run | --dry_run) DRY_RUN=1; shift ;;
      --) shift; main_args=("$@"); break ;;
      *) usage_error "unknown argument to start: $1" ;;
    esac
  done
  require --config "${config}"
  require --workdir "${workdir}"
  if pid="$(running_pid)"; then
    if ((restart)); then
      stop_job
    else
      log "a training job is already running on ${HOSTNAME} (pid ${pid}); log: ${LOG_FILE}. Use --restart."
      return 0
    fi
  fi
  local env_vars=()
  [[ -n ${data_dir} ]] && env_vars+=("TFDS_DATA_DIR=${data_dir}")
  local cmd=(env ${env_vars[@]+"${env_vars[@]}"} "${VENV}/bin/python" -m estrnn_jax.main
    --config "${config}" --workdir "${workdir}" ${main_args[@]+"${main_args[@]}"})
  # The detached shell records its own pid (= the job's process group, = python's pid after exec).
  # shellcheck disable=SC2016  # $$, $0 and $@ belong to the inner shell.
  local detached=(setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "${PID_FILE}" "${cmd[@]}")
  cd "${REPO_ROOT}" || die "cannot enter ${REPO_ROOT}"
  if is_dry_run; then
    echo "+ $(quote_cmd "${detached[@]}") >>$(shell_quote "${LOG_FILE}") 2>&1 </dev/null &"
    return 0
  fi
  [[ -x ${VENV}/bin/python ]] || die "${VENV} is missing: run launch/remote_setup.sh (tpu_install.sh) first"
  mkdir -p "${LOG_DIR}"
  rm -f "${PID_FILE}"
  echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC') ${HOSTNAME}: $(quote_cmd "${cmd[@]}")" >>"${LOG_FILE}"
  "${detached[@]}" >>"${LOG_FILE}" 2>&1 </dev/null &
  sleep "${START_CHECK_SECONDS}"
  if ! pid="$(running_pid)"; then
    tail -n 30 "${LOG_FILE}" >&2
    die "the training job exited at once on ${HOSTNAME} (log above: ${LOG_FILE})"
  fi
  log "training started on ${HOSTNAME} (pid ${pid}); log: ${LOG_FILE}"
}

show_logs() {
  local lines=100 follow=0
  while (($#)); do
    if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
    case $1 in
      --lines) need_value "$@"; lines=$2; shift 2 ;;
      --follow) follow=1; shift ;;
      *) usage_error "unknown argument to logs: $1" ;;
    esac
  done
  [[ ${lines} =~ ^[0-9]+$ ]] || usage_error "--lines must be a number, not '${lines}'"
  if ((follow)); then
    exec tail -n "${lines}" -F "${LOG_FILE}"
  fi
  [[ -f ${LOG_FILE} ]] || die "no log yet on ${HOSTNAME} (${LOG_FILE})"
  tail -n "${lines}" "${LOG_FILE}"
}

if [[ ${1:-} == --dry-run || ${1:-} == --dry_run ]]; then
  DRY_RUN=1
  shift
fi
(($#)) || usage_error "missing COMMAND"
command=$1
shift
case ${command} in
  start) start_job "$@" ;;
  stop) stop_job ;;
  status)
    if pid="$(running_pid)"; then
      log "training job running on ${HOSTNAME} (pid ${pid}); log: ${LOG_FILE}"
    else
      log "no training job running on ${HOSTNAME}"
    fi
    if [[ -f ${LOG_FILE} ]]; then tail -n 5 "${LOG_FILE}"; fi
    ;;
  check-idle)
    if pid="$(running_pid)"; then
      die "a training job is running on ${HOSTNAME} (pid ${pid}); stop it first: launch/tpu_run.sh --stop"
    fi
    ;;
  logs) show_logs "$@" ;;
  -h | --help) usage ;;
  *) usage_error "unknown command: ${command}" ;;
esac
