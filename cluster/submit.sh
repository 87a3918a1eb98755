#!/usr/bin/env bash
# Submit a fedray run to a running Ray cluster with `ray job submit`.
#
#   cluster/submit.sh [DASHBOARD_URL] [extra `fedray run` arguments...]
#   e.g. cluster/submit.sh http://127.0.0.1:8265 --preset default --set train.method=prog
#
# DASHBOARD_URL defaults to $RAY_API_SERVER_ADDRESS, then http://127.0.0.1:8265 (`ray dashboard
# cluster/gpu-cluster.yaml` forwards it there). Ray 2.60 clusters use token authentication: the cluster's
# token must be in ~/.ray/auth_token, $RAY_AUTH_TOKEN_PATH or $RAY_AUTH_TOKEN; it is read by Ray, never echoed.
set -euo pipefail
cd "$(dirname "$0")/.."

address="${RAY_API_SERVER_ADDRESS:-http://127.0.0.1:8265}"
if [[ $# -gt 0 && "$1" == http* ]]; then address="$1"; shift; fi
if [[ -z "${RAY_AUTH_TOKEN:-}" && ! -s "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ]]; then
  echo "submit.sh: no Ray auth token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN);" \
       "copy the cluster's token first (e.g. ray get-auth-token on the head node)" >&2
  exit 2
fi
export RAY_AUTH_MODE=token

if [[ $# -eq 0 ]]; then set -- --preset default; fi

# The working dir (this repo, minus local environments and runs) is uploaded and put first on the job's
# PYTHONPATH. Client actors take a quarter GPU each on GPU nodes (CPU fallback without GPUs); the run
# directory is on the head node: '$HOME' is expanded there, by the job's shell.
runtime_env='{"excludes": [".venv/", "runs/", ".git", "**/__pycache__/"], "env_vars": {"HF_HUB_OFFLINE": "1"}}'
stamp="$(date +%Y%m%d-%H%M%S)"
exec ray job submit --address "$address" --working-dir . --runtime-env-json "$runtime_env" -- \
  fedray run --set runtime.client_gpus=0.25 --out '$HOME/fedray-runs/job-'"$stamp" "$@"
