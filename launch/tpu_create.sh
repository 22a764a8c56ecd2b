#!/usr/bin/env bash
# Creates a Cloud TPU VM or pod slice; a no-op if it already exists.
#
#   bash launch/tpu_create.sh --name estrnn-v4 --zone us-central2-b --accelerator v4-32 [--spot] [--queued]
#
# See launch/README.md for the whole recipe.

# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: bash launch/tpu_create.sh --name NAME --zone ZONE --accelerator TYPE [options] [-- GCLOUD_ARGS...]

Creates the TPU VM (single host, e.g. v5litepod-8) or pod slice (several hosts, e.g. v4-32) NAME.
Does nothing if NAME already exists.

  --name NAME          TPU VM name (env TPU_NAME)
  --zone ZONE          e.g. us-central2-b (env TPU_ZONE)
  --project PROJECT    Google Cloud project (env TPU_PROJECT; default: gcloud's configured project)
  --accelerator TYPE   accelerator type: v4-8, v4-32, v5litepod-8, v5p-16, v6e-8, ...
  --version VERSION    TPU software version; default from the accelerator: v2/v3/v4 tpu-ubuntu2204-base,
                       v5litepod v2-alpha-tpuv5-lite, v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e
  --spot               Spot VM: much cheaper, may be preempted at any time
  --preemptible        preemptible VM (the older form of --spot; not with --queued)
  --queued             request through a queued resource (waits in the queue until capacity is free)
  --wait               with --queued: poll until the queued resource is ACTIVE (every POLL_SECONDS=30 s)
  --dry-run            print the gcloud commands instead of running them (or DRY_RUN=1)
  -- GCLOUD_ARGS       extra flags for the gcloud create command (e.g. --reserved, --network=...)
EOF
}

ACCELERATOR="${TPU_ACCELERATOR:-}"
VERSION="${TPU_VERSION:-}"
SPOT=0
PREEMPTIBLE=0
QUEUED=0
WAIT=0
EXTRA=()
while (($#)); do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  parse_common_flag "$@"
  if ((CONSUMED)); then shift "${CONSUMED}"; continue; fi
  case $1 in
    --accelerator | --accelerator-type | --accelerator_type) need_value "$@"; ACCELERATOR=$2; shift 2 ;;
    --version) need_value "$@"; VERSION=$2; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --preemptible) PREEMPTIBLE=1; shift ;;
    --queued) QUEUED=1; shift ;;
    --wait) WAIT=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

require_tpu_flags
require --accelerator "${ACCELERATOR}"
((SPOT && PREEMPTIBLE)) && usage_error "--spot and --preemptible exclude each other"
((QUEUED && PREEMPTIBLE)) && usage_error "queued resources take --spot, not --preemptible"
((WAIT && !QUEUED)) && usage_error "--wait only applies to --queued (a direct create waits anyway)"

if [[ -z ${VERSION} ]]; then
  case ${ACCELERATOR} in
    v2-* | v3-* | v4-*) VERSION=tpu-ubuntu2204-base ;;
    v5litepod-* | v5e-*) VERSION=v2-alpha-tpuv5-lite ;;
    v5p-*) VERSION=v2-alpha-tpuv5 ;;
    v6e-*) VERSION=v2-alpha-tpuv6e ;;
    *) usage_error "no default --version for accelerator '${ACCELERATOR}'; pass --version" ;;
  esac
fi

location_flags
if ((QUEUED)); then
  if resource_state queued-resources missing; then
    log "queued resource ${NAME} already exists (state ${STATE}); nothing to create"
  else
    cmd=(gcloud compute tpus queued-resources create "${NAME}" "--node-id=${NAME}" "${LOCATION_FLAGS[@]}"
      "--accelerator-type=${ACCELERATOR}" "--runtime-version=${VERSION}")
    ((SPOT)) && cmd+=(--spot)
    run "${cmd[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
    log "queued resource ${NAME} requested; the TPU VM exists once its state is ACTIVE"
  fi
  if ((WAIT)); then
    until resource_state queued-resources exists && [[ ${STATE} == ACTIVE || ${STATE} == UNKNOWN ]]; do
      case ${STATE} in
        FAILED | SUSPENDED | SUSPENDING | DELETING) die "queued resource ${NAME} is ${STATE}" ;;
      esac
      log "queued resource ${NAME}: ${STATE:-not visible yet}; checking again in ${POLL_SECONDS} s"
      sleep "${POLL_SECONDS}"
    done
    log "queued resource ${NAME} is ${STATE}"
  fi
else
  if resource_state tpu-vm missing; then
    log "TPU VM ${NAME} already exists (state ${STATE}); nothing to create"
    if [[ ${STATE} == PREEMPTED || ${STATE} == TERMINATED ]]; then
      log "it was ${STATE}: delete it (launch/tpu_delete.sh) and create it again to get a working VM"
    fi
    exit 0
  fi
  cmd=(gcloud compute tpus tpu-vm create "${NAME}" "${LOCATION_FLAGS[@]}"
    "--accelerator-type=${ACCELERATOR}" "--version=${VERSION}")
  ((SPOT)) && cmd+=(--spot)
  ((PREEMPTIBLE)) && cmd+=(--preemptible)
  run "${cmd[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
  log "next: bash launch/tpu_install.sh --name ${NAME} --zone ${ZONE}${PROJECT:+ --project ${PROJECT}}"
fi
