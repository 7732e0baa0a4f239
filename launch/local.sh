#!/usr/bin/env bash
# One training job on this machine, by hand: a coordinator and slsa-torchrun.
#
#   launch/local.sh JOB_ID NPROC SCRIPT [ARGS...]
#
# Environment: KEY (signing key, default keys/signing.key), OUT (default out/),
# SLSA_DIST (the slsa-dist command, default slsa-dist), SLSA_TORCHRUN (default
# slsa-torchrun). Creates a key with `slsa-dist keygen` if KEY does not exist.
# Ends with `slsa-dist verify` of the job's bundle.
set -euo pipefail

if [ "$#" -lt 3 ]; then
  echo "usage: $0 JOB_ID NPROC SCRIPT [ARGS...]" >&2
  exit 2
fi
job_id=$1
nproc=$2
shift 2

key=${KEY:-keys/signing.key}
out=${OUT:-out}
slsa_dist=${SLSA_DIST:-slsa-dist}
slsa_torchrun=${SLSA_TORCHRUN:-slsa-torchrun}

if [ ! -f "$key" ]; then
  "$slsa_dist" keygen --out "$(dirname "$key")" --name "$(basename "$key" .key)"
fi
mkdir -p "$out"
port_file=$(mktemp)
trap 'rm -f "$port_file"; [ -n "${coordinator_pid:-}" ] && kill "$coordinator_pid" 2>/dev/null || true' EXIT

# Loopback only: plaintext gRPC is refused anywhere else.
"$slsa_dist" coordinator --job-id "$job_id" --listen 127.0.0.1:0 --port-file "$port_file" \
  --key "$key" --out "$out" --world-size "$nproc" --plaintext \
  --builder-id https://slsa-dist.dev/builders/local/v1 &
coordinator_pid=$!
for _ in $(seq 1 300); do
  [ -s "$port_file" ] && break
  sleep 0.1
done
[ -s "$port_file" ] || { echo "coordinator did not start" >&2; exit 1; }
address=$(cat "$port_file")

"$slsa_torchrun" --slsa-coordinator "$address" --slsa-job-id "$job_id" \
  --slsa-spool-dir "$out/spool" --nproc-per-node "$nproc" \
  -m slsa_dist.exec "$@"

wait "$coordinator_pid"
coordinator_pid=
"$slsa_dist" verify "$out/$job_id.intoto.jsonl" --key "${key%.key}.pub"
