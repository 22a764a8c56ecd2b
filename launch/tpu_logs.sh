#!/usr/bin/env bash
# Streams the training log of one worker (default 0, which logs the run's progress) or of all workers.
#
#   bash launch/tpu_logs.sh --name estrnn-v4 --zone us-central2-b [--worker all] [--lines 200] [--no-follow]

# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: bash launch/tpu_logs.sh --name NAME --zone ZONE [--project PROJECT] [--worker N|all] [--lines N]
                               [--no-follow] [--dry-run]

  --name, --zone, --project   the TPU VM (env TPU_NAME, TPU_ZONE, TPU_PROJECT)
  --worker N|all              whose log (default 0); all prints every worker's, interleaved
  --lines N                   lines of history to show first (default 100)
  --no-follow                 print and exit instead of streaming (Ctrl-C stops streaming; training goes on)
  --dry-run                   print the command instead of running it (or DRY_RUN=1)
EOF
}

WORKER=0
LINES=100
FOLLOW=1
while (($#)); do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  parse_common_flag "$@"
  if ((CONSUMED)); then shift "${CONSUMED}"; continue; fi
  case $1 in
    --worker) need_value "$@"; WORKER=$2; shift 2 ;;
    --lines) need_value "$@"; LINES=$2; shift 2 ;;
    --no-follow | --no_follow) FOLLOW=0; shift ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
require_tpu_flags
[[ ${WORKER} == all || ${WORKER} =~ ^[0-9]+$ ]] || usage_error "--worker must be a number or 'all'"
[[ ${LINES} =~ ^[0-9]+$ ]] || usage_error "--lines must be a number"

remote="bash ~/estrnn_jax/launch/remote_train.sh logs --lines ${LINES}"
((FOLLOW)) && remote+=" --follow"
location_flags
run gcloud compute tpus tpu-vm ssh "${NAME}" "${LOCATION_FLAGS[@]}" "--worker=${WORKER}" "--command=${remote}"
