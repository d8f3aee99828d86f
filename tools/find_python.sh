# Sourced by tools/*.sh after they set ROOT (the repository root): sets PY, the interpreter
# that runs the tools. $PYTHON overrides; else the project's environment ($ROOT/.venv, made by
# tools/setup_env.sh), so that a fresh shell needs no `source .venv/bin/activate`; else
# `python` from PATH.
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x "$ROOT/.venv/bin/python" ]; then
    PY="$ROOT/.venv/bin/python"
else
    PY=python
fi
