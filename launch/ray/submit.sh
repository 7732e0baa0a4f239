#!/usr/bin/env bash
# Submit a Ray Train job with slsa-dist switched on, no code change:
# RAY_TRAIN_CALLBACKS makes Ray Train build slsa_dist.ray.SlsaCallback itself.
#
#   launch/ray/submit.sh train_ray.py [ARGS...]
#
# Environment: RAY_ADDRESS (default http://127.0.0.1:8265), SLSA_JOB_ID
# (default: Ray's run id), SLSA_KEY (signing key on the head node; the
# coordinator runs in the Train controller) or SLSA_COORDINATOR (an existing
# coordinator), SLSA_OUT (bundle directory on the head node).
set -euo pipefail

if [ "$#" -lt 1 ]; then
  echo "usage: $0 TRAIN_SCRIPT [ARGS...]" >&2
  exit 2
fi
script=$1
shift

address=${RAY_ADDRESS:-http://127.0.0.1:8265}
env_json=$(python3 - <<PY
import json, os
env = {"RAY_TRAIN_CALLBACKS": "slsa_dist.ray.SlsaCallback"}
for name in ("SLSA_JOB_ID", "SLSA_KEY", "SLSA_COORDINATOR", "SLSA_OUT", "SLSA_TLS_DIR"):
    if os.environ.get(name):
        env[name] = os.environ[name]
print(json.dumps({"env_vars": env}))
PY
)

ray job submit --address "$address" --runtime-env-json "$env_json" \
  --working-dir "$(dirname "$script")" -- python "$(basename "$script")" "$@"
