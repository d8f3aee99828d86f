#!/usr/bin/env bash
# Create (or reuse) the project-local virtual environment with the pinned OpenMMLab stack.
#
# Idempotent: when the environment already matches the requirement files it only re-checks the
# imports (a few seconds). Called by `make demo` and `make test`.
#
# Environment variables:
#   VENV            where the environment lives (default: <project>/.venv)
#   PYTHON          interpreter used to create it (default: python3.11, else python3)
#   MMCV_WHEEL_DIR  folder holding a prebuilt mmcv-2.1.0 wheel with compiled ops
#                   (default: <project>/../shared/wheels when it exists). Without one, mmcv 2.1.0 is
#                   built from source with the C++20 fix torch 2.14 headers need (~25 min on 2 cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
if [ -z "${PYTHON:-}" ]; then
  PYTHON="$(command -v python3.11 || command -v python3)"
fi
if [ -z "${MMCV_WHEEL_DIR:-}" ] && [ -d "$ROOT/../shared/wheels" ]; then
  MMCV_WHEEL_DIR="$(cd "$ROOT/../shared/wheels" && pwd)"
fi
MMCV_VERSION=2.1.0

step() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

# pip prints one "Location ... is ignored" warning per local mirror folder; keep only real problems.
pip_q() {
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
    | grep -v -E 'Location .* is ignored|^\s*$' || true
  return "${PIPESTATUS[0]}"
}

check_imports() {
  "$VENV/bin/python" - <<'PY'
import warnings
warnings.filterwarnings('ignore')
import mmcv, mmcv.ops  # noqa: E401  compiled ops are required by mmseg and mmdet
import mmengine, mmpretrain, mmseg.models, mmdet.models  # noqa: E401
import revisit_ssl
assert mmcv.__version__ == '2.1.0', mmcv.__version__
PY
}

# A fingerprint of everything that decides the environment's content.
fingerprint() {
  cat "$ROOT"/requirements/*.txt "$ROOT/tools/setup_env.sh" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/.revisit_ssl_env"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ]; then
  if check_imports 2>/dev/null; then
    step "environment $VENV is up to date"
    exit 0
  fi
  step "environment $VENV is stale (imports fail); repairing"
fi

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi

step "installing build tools (setuptools<81: mmcv's setup.py imports pkg_resources)"
pip_q --upgrade pip 'setuptools>=77,<81' wheel

step "installing torch 2.14.1 / torchvision 0.29.1 (CUDA builds; they run on CPU)"
pip_q -r "$ROOT/requirements/torch.txt"

if "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  step "mmcv $MMCV_VERSION with compiled ops already installed"
else
  wheel=""
  if [ -n "${MMCV_WHEEL_DIR:-}" ]; then
    wheel="$(ls "$MMCV_WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
    [ -n "$wheel" ] || step "no mmcv-$MMCV_VERSION wheel in $MMCV_WHEEL_DIR; building instead"
  fi
  if [ -n "$wheel" ]; then
    step "installing mmcv from wheel $wheel"
    pip_q "$wheel"
  else
    step "building mmcv $MMCV_VERSION with compiled ops from source: no prebuilt wheel exists for"
    step "  torch 2.14, whose headers need -std=c++20 (mmcv's setup.py hard-codes c++14/17)."
    step "  This takes about 25 minutes on 2 cores. Set MMCV_WHEEL_DIR to a folder with a wheel to skip it."
    build="$(mktemp -d)"
    "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$build" 2>&1 \
      | grep -v 'Location .* is ignored' || true
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$build/mmcv-$MMCV_VERSION/setup.py"
    grep -q 'std=c++20' "$build/mmcv-$MMCV_VERSION/setup.py" || die "could not patch mmcv's setup.py for C++20"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" pip_q --no-build-isolation "$build/mmcv-$MMCV_VERSION"
    rm -rf "$build"
  fi
fi

step "installing the OpenMMLab stack and test tools"
pip_q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"

step "installing revisit-ssl (editable)"
pip_q --no-deps --no-build-isolation -e "$ROOT"

step "checking imports (mmcv.ops, mmseg.models, mmdet.models, revisit_ssl)"
if ! check_imports; then
  die "the environment is incomplete: 'import mmcv.ops, mmseg.models, mmdet.models' failed.
  mmseg and mmdet need mmcv $MMCV_VERSION WITH compiled ops (mmcv-lite is not enough).
  Remove $VENV and run this script again, or point MMCV_WHEEL_DIR at a folder with a wheel."
fi
fingerprint > "$STAMP"
step "environment ready: $VENV"
