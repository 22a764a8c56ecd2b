#!/usr/bin/env bash
# Starts (or stops) training on every worker of a TPU VM / pod slice:
#   python -m estrnn_jax.main --config CONFIG --workdir gs://... [MAIN_ARGS], with TFDS_DATA_DIR set.
# Rerunning while the job runs is a no-op; rerunning after a preemption (on a fresh VM) resumes from the
# latest checkpoint in --workdir. With --plan it first compiles the run's programs for the slice's accelerator
# type on this machine (python -m estrnn_jax.plan) and starts nothing if they do not fit.
#
#   bash launch/tpu_run.sh --name estrnn-v4 --zone us-central2-b --config configs/bsd_2ms16ms.py \
#     --workdir gs://BUCKET/estrnn/bsd_2ms16ms --data_dir gs://BUCKET/tfds -- --config.batch_size=64

# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: bash launch/tpu_run.sh --name NAME --zone ZONE [--project PROJECT] --config FILE --workdir gs://...
                              [--data_dir gs://...] [--plan [--accelerator TYPE]] [--restart] [--dry-run]
                              [-- MAIN_ARGS...]
       bash launch/tpu_run.sh --name NAME --zone ZONE [--project PROJECT] (--stop | --status) [--dry-run]

Runs `python -m estrnn_jax.main --config FILE --workdir DIR MAIN_ARGS...` detached on every worker
(logs: ~/estrnn_logs/train_<hostname>.log on each worker; stream them with launch/tpu_logs.sh).

  --name, --zone, --project   the TPU VM (env TPU_NAME, TPU_ZONE, TPU_PROJECT)
  --config FILE               config file relative to the repository root, e.g. configs/bsd_2ms16ms.py
  --workdir DIR               checkpoints and TensorBoard logs; must be on GCS (gs://...), shared by all
                              workers and surviving preemption (--allow_local_workdir to override)
  --data_dir DIR              TFDS data directory (sets TFDS_DATA_DIR), e.g. gs://BUCKET/tfds
  --plan                      first plan the run here: compile its train and evaluation steps for the slice's
                              accelerator type (python -m estrnn_jax.plan --must_fit, with MAIN_ARGS'
                              --config.* overrides; needs the compilers of requirements-plan.txt) and stop,
                              printing the overrides that would fit, if they do not fit
  --accelerator TYPE          the slice's accelerator type for --plan (default: asked from gcloud)
  --restart                   stop a running job first, then start (it resumes from --workdir)
  --stop                      stop the job on every worker
  --status                    show whether the job runs on each worker and the end of its log
  --dry-run                   print the commands instead of running them (or DRY_RUN=1)
  -- MAIN_ARGS                passed to estrnn_jax.main unchanged, e.g. --config.batch_size=64
EOF
}

CONFIG=""
WORKDIR=""
DATA_DIR=""
ACTION=start
RESTART=0
PLAN=0
ACCELERATOR=""
ALLOW_LOCAL_WORKDIR=0
MAIN_ARGS=()
while (($#)); do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  parse_common_flag "$@"
  if ((CONSUMED)); then shift "${CONSUMED}"; continue; fi
  case $1 in
    --config) need_value "$@"; CONFIG=$2; shift 2 ;;
    --workdir) need_value "$@"; WORKDIR=$2; shift 2 ;;
    --data_dir | --data-dir) need_value "$@"; DATA_DIR=$2; shift 2 ;;
    --restart) RESTART=1; shift ;;
    --plan) PLAN=1; shift ;;
    --accelerator) need_value "$@"; ACCELERATOR=$2; shift 2 ;;
    --stop) ACTION=stop; shift ;;
    --status) ACTION=status; shift ;;
    --allow_local_workdir) ALLOW_LOCAL_WORKDIR=1; shift ;;
    --) shift; MAIN_ARGS=("$@"); break ;;
    *) usage_error "unknown argument: $1 (arguments for estrnn_jax.main go after --)" ;;
  esac
done
require_tpu_flags

readonly REMOTE='bash ~/estrnn_jax/launch/remote_train.sh'
if [[ ${ACTION} != start ]]; then
  ssh_all_workers "${REMOTE} ${ACTION}"
  exit 0
fi

require --config "${CONFIG}"
require --workdir "${WORKDIR}"
if [[ ${WORKDIR} != gs://* ]] && ((!ALLOW_LOCAL_WORKDIR)); then
  usage_error "--workdir must be a gs:// path that all workers share and that outlives the VM: '${WORKDIR}'"
fi
if [[ ! -f ${REPO_ROOT}/${CONFIG%%:*} ]]; then
  log "warning: ${CONFIG%%:*} is not in this checkout; the workers must have it"
fi
[[ -n ${DATA_DIR} ]] || log "no --data_dir: the workers use TFDS's default data directory (fine for" \
  "the built-in synthetic data)"

if ((PLAN)); then
  plan_run "${CONFIG}" "${ACCELERATOR}" "${MAIN_ARGS[@]+"${MAIN_ARGS[@]}"}"
fi

remote="${REMOTE} start --config $(shell_quote "${CONFIG}") --workdir $(shell_quote "${WORKDIR}")"
[[ -n ${DATA_DIR} ]] && remote+=" --data_dir $(shell_quote "${DATA_DIR}")"
((RESTART)) && remote+=" --restart"
if ((${#MAIN_ARGS[@]})); then
  remote+=" -- $(quote_cmd "${MAIN_ARGS[@]}")"
fi
ssh_all_workers "${remote}"
log "logs: bash launch/tpu_logs.sh --name ${NAME} --zone ${ZONE}${PROJECT:+ --project ${PROJECT}}"
