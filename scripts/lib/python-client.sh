# Sourced by scripts/test: a virtualenv with the official Kubernetes Python client, for the
# end-to-end tests that drive kflex with it. Kept in target/ so reruns skip the install;
# exported as KFLEX_PYTHON. Without python3 the Python tests say so and skip.

kflex_python_client() {
  local venv="target/python-client"
  local python="$venv/bin/python"
  if ! command -v python3 >/dev/null 2>&1; then
    say "python3 not found: the Python client tests will be skipped"
    return 0
  fi
  if ! "$python" -c 'import kubernetes' >/dev/null 2>&1; then
    say "installing the Kubernetes Python client from PyPI into $venv"
    python3 -m venv "$venv" || { say "python3 -m venv failed: the Python client tests will be skipped"; return 0; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt >&2 \
      || { say "pip install failed: the Python client tests will be skipped"; return 0; }
  fi
  KFLEX_PYTHON="$(pwd)/$python"
  export KFLEX_PYTHON
}
