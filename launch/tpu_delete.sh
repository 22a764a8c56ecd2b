#!/usr/bin/env bash
# Deletes a TPU VM / pod slice (or its queued resource); a no-op if it does not exist.
# The workdir on GCS (checkpoints, TensorBoard logs) is not touched.
#
#   bash launch/tpu_delete.sh --name estrnn-v4 --zone us-central2-b [--queued]

# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: bash launch/tpu_delete.sh --name NAME --zone ZONE [--project PROJECT] [--queued] [--dry-run]

  --name, --zone, --project   the TPU VM (env TPU_NAME, TPU_ZONE, TPU_PROJECT)
  --queued                    it was created with tpu_create.sh --queued: delete the queued resource
                              and its TPU VM
  --dry-run                   print the commands instead of running them (or DRY_RUN=1)
EOF
}

QUEUED=0
while (($#)); do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  parse_common_flag "$@"
  if ((CONSUMED)); then shift "${CONSUMED}"; continue; fi
  case $1 in
    --queued) QUEUED=1; shift ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
require_tpu_flags
location_flags

if ((QUEUED)); then
  kind=queued-resources
  delete=(gcloud compute tpus queued-resources delete "${NAME}" "${LOCATION_FLAGS[@]}" --force --quiet)
else
  kind=tpu-vm
  delete=(gcloud compute tpus tpu-vm delete "${NAME}" "${LOCATION_FLAGS[@]}" --quiet)
fi
if resource_state "${kind}" exists; then
  run "${delete[@]}"
  is_dry_run || log "deleted ${kind} ${NAME}"
else
  log "${kind} ${NAME} does not exist in ${ZONE}; nothing to delete"
fi
