#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args...]
# Launches GPUS processes on this node with torchrun (one per GPU). Without a GPU, GPUS CPU
# processes train with the gloo backend (tools/train.py sets that up; for tests and debugging).
# Several nodes: run it once per node with the same NNODES, MASTER_ADDR and PORT and this
# node's NODE_RANK (0 on the node at MASTER_ADDR); see docs/distributed.md.
# Interpreter: $PYTHON, else .venv/bin/python next to tools/, else python (tools/find_python.sh).
set -euo pipefail
CONFIG=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/tools/find_python.sh"

PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
"$PY" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/train.py" \
    "$CONFIG" \
    --launcher pytorch "$@"
