#!/usr/bin/env bash
# Runs training on one host of a multi-host GPU job: one process per host, using all of its GPUs.
# Start it on every host (by hand, pdsh, or `srun`); the processes find each other through JAX's
# coordinator. estrnn_jax.main calls jax.distributed.initialize() when JAX_COORDINATOR_ADDRESS is set.
#
#   # host 0 (10.0.0.1) and host 1, two hosts in all:
#   bash launch/gpu_multihost.sh --coordinator 10.0.0.1:12345 --num_processes 2 --process_id 0 \
#     --config configs/bsd_2ms16ms.py --workdir /shared/estrnn/bsd --data_dir /shared/tfds
#   bash launch/gpu_multihost.sh --coordinator 10.0.0.1:12345 --num_processes 2 --process_id 1 ...
#   # SLURM: srun --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 bash launch/gpu_multihost.sh --config ...

# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: bash launch/gpu_multihost.sh --config FILE --workdir DIR [--data_dir DIR]
         [--coordinator HOST:PORT --num_processes N --process_id I] [--local_device_ids 0,1,...]
         [--python PYTHON] [--dry-run] [-- MAIN_ARGS...]

Runs `python -m estrnn_jax.main --config FILE --workdir DIR MAIN_ARGS...` in the foreground with the
distributed settings in the environment (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID,
JAX_LOCAL_DEVICE_IDS) and TFDS_DATA_DIR.

  --coordinator HOST:PORT  address of process 0, reachable from every host (env JAX_COORDINATOR_ADDRESS)
  --num_processes N        number of hosts (env JAX_NUM_PROCESSES)
  --process_id I           this host's rank, 0..N-1; 0 runs on the coordinator host (env JAX_PROCESS_ID)
                           Under SLURM (srun), leave these three out: they come from SLURM_* variables.
                           With none of them and no SLURM job: a single-host run.
  --local_device_ids IDS   GPUs this process uses (default: all GPUs of the host; under SLURM with several
                           tasks per node, the task's own GPU)
  --config, --workdir      as for estrnn_jax.main; the workdir must be shared by all hosts (NFS, GCS, ...)
  --data_dir DIR           TFDS data directory (sets TFDS_DATA_DIR)
  --python PYTHON          interpreter (default ~/estrnn_venv/bin/python if present, else python3;
                           env ESTRNN_PYTHON). Install with: bash launch/remote_setup.sh --jax_extra cuda12
  --dry-run                print the command instead of running it (or DRY_RUN=1)
  -- MAIN_ARGS             passed to estrnn_jax.main unchanged, e.g. --config.batch_size=64
EOF
}

COORDINATOR="${JAX_COORDINATOR_ADDRESS:-}"
NUM_PROCESSES="${JAX_NUM_PROCESSES:-}"
PROCESS_ID="${JAX_PROCESS_ID:-}"
LOCAL_DEVICE_IDS="${JAX_LOCAL_DEVICE_IDS:-}"
CONFIG=""
WORKDIR=""
DATA_DIR="${TFDS_DATA_DIR:-}"
if [[ -n ${ESTRNN_PYTHON:-} ]]; then
  PYTHON=${ESTRNN_PYTHON}
elif [[ -x ${HOME}/estrnn_venv/bin/python ]]; then
  PYTHON=${HOME}/estrnn_venv/bin/python
else
  PYTHON=python3
fi
MAIN_ARGS=()
while (($#)); do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  case $1 in
    --coordinator) need_value "$@"; COORDINATOR=$2; shift 2 ;;
    --num_processes) need_value "$@"; NUM_PROCESSES=$2; shift 2 ;;
    --process_id) need_value "$@"; PROCESS_ID=$2; shift 2 ;;
    --local_device_ids) need_value "$@"; LOCAL_DEVICE_IDS=$2; shift 2 ;;
    --config) need_value "$@"; CONFIG=$2; shift 2 ;;
    --workdir) need_value "$@"; WORKDIR=$2; shift 2 ;;
    --data_dir | --data-dir) need_value "$@"; DATA_DIR=$2; shift 2 ;;
    --python) need_value "$@"; PYTHON=$2; shift 2 ;;
    --dry-run | --dry_run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; MAIN_ARGS=("$@"); break ;;
    *) usage_error "unknown argument: $1 (arguments for estrnn_jax.main go after --)" ;;
  esac
done
require --config "${CONFIG}"
require --workdir "${WORKDIR}"

# Number of GPUs on this host, for one process that uses them all.
count_local_gpus() {
  if [[ -n ${SLURM_GPUS_ON_NODE:-} ]]; then
    echo "${SLURM_GPUS_ON_NODE}"
  elif [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
    local ids
    IFS=, read -r -a ids <<<"${CUDA_VISIBLE_DEVICES}"
    echo "${#ids[@]}"
  elif command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --list-gpus | grep -c '^GPU'
  else
    die "cannot tell how many GPUs this host has (no SLURM_GPUS_ON_NODE, CUDA_VISIBLE_DEVICES or" \
      "nvidia-smi); pass --local_device_ids"
  fi
}

# First host of a SLURM node list ("node[01-04],gpu7" -> node01).
first_slurm_host() {
  if command -v scontrol >/dev/null 2>&1; then
    scontrol show hostnames "$1" | head -n 1
  elif [[ $1 =~ ^([^,\[]+)(\[([0-9]+))? ]]; then
    echo "${BASH_REMATCH[1]}${BASH_REMATCH[3]}"
  else
    die "cannot parse SLURM node list '$1'"
  fi
}

explicit="${COORDINATOR}${NUM_PROCESSES}${PROCESS_ID}"
if [[ -n ${explicit} ]]; then
  [[ -n ${COORDINATOR} && -n ${NUM_PROCESSES} && -n ${PROCESS_ID} ]] ||
    usage_error "--coordinator, --num_processes and --process_id go together"
elif [[ -n ${SLURM_JOB_ID:-} && -n ${SLURM_NTASKS:-} && -n ${SLURM_PROCID:-} ]]; then
  nodelist="${SLURM_STEP_NODELIST:-${SLURM_JOB_NODELIST:-}}"
  [[ -n ${nodelist} ]] || die "SLURM job without SLURM_STEP_NODELIST / SLURM_JOB_NODELIST; run it with srun"
  # The port JAX itself would derive from the job id, in the ephemeral range.
  COORDINATOR="$(first_slurm_host "${nodelist}"):$((SLURM_JOB_ID % 4096 + 61440))"
  NUM_PROCESSES=${SLURM_NTASKS}
  PROCESS_ID=${SLURM_PROCID}
  nodes="${SLURM_STEP_NUM_NODES:-${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-${SLURM_NTASKS}}}}"
  if [[ -z ${LOCAL_DEVICE_IDS} && ${SLURM_NTASKS} -gt ${nodes} ]]; then
    LOCAL_DEVICE_IDS=${SLURM_LOCALID:-0}  # Several tasks per node: one GPU each.
  fi
  # Otherwise (one task per node) JAX would give the task only GPU ${SLURM_LOCALID}: list them all.
  if [[ -z ${LOCAL_DEVICE_IDS} ]]; then
    gpus="$(count_local_gpus)"
    [[ ${gpus} =~ ^[1-9][0-9]*$ ]] || die "found no GPUs on this host (count: '${gpus}')"
    LOCAL_DEVICE_IDS="$(seq -s, 0 $((gpus - 1)))"
  fi
fi

env_vars=()
if [[ -n ${COORDINATOR} ]]; then
  [[ ${COORDINATOR} =~ ^[^:]+:[0-9]+$ || ${COORDINATOR} =~ ^\[.*\]:[0-9]+$ ]] ||
    usage_error "--coordinator must be HOST:PORT, not '${COORDINATOR}'"
  [[ ${NUM_PROCESSES} =~ ^[1-9][0-9]*$ ]] || usage_error "--num_processes must be a positive integer"
  if [[ ! ${PROCESS_ID} =~ ^[0-9]+$ ]] || ((PROCESS_ID >= NUM_PROCESSES)); then
    usage_error "--process_id must be in 0..$((NUM_PROCESSES - 1)), not '${PROCESS_ID}'"
  fi
  env_vars+=("JAX_COORDINATOR_ADDRESS=${COORDINATOR}" "JAX_NUM_PROCESSES=${NUM_PROCESSES}"
    "JAX_PROCESS_ID=${PROCESS_ID}")
fi
if [[ -n ${LOCAL_DEVICE_IDS} ]]; then
  [[ ${LOCAL_DEVICE_IDS} =~ ^[0-9]+(,[0-9]+)*$ ]] ||
    usage_error "--local_device_ids must be a comma-separated list of GPU numbers, not '${LOCAL_DEVICE_IDS}'"
  env_vars+=("JAX_LOCAL_DEVICE_IDS=${LOCAL_DEVICE_IDS}")
fi
[[ -n ${DATA_DIR} ]] && env_vars+=("TFDS_DATA_DIR=${DATA_DIR}")

cd "${REPO_ROOT}" || die "cannot enter ${REPO_ROOT}"
log "process ${PROCESS_ID:-0} of ${NUM_PROCESSES:-1}${COORDINATOR:+, coordinator ${COORDINATOR}}"
run env ${env_vars[@]+"${env_vars[@]}"} "${PYTHON}" -m estrnn_jax.main --config "${CONFIG}" \
  --workdir "${WORKDIR}" ${MAIN_ARGS[@]+"${MAIN_ARGS[@]}"}
