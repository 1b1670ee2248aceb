#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection laid out as ansible_collections/peerlab/bitcoin
# (ansible-test needs that path). Test requirements go into ansible-test's own venvs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# ansible-test bootstraps pip in its venvs with a get-pip script downloaded from a host this
# machine cannot reach. Stand in for it: the interpreter's bundled pip (ensurepip), then pip from
# PyPI with the arguments ansible-test passed.
pip_version=$("$root/.venv/bin/python" -c 'from ansible_test._internal.python_requirements import PIP_VERSION as v; print(v)' 2>/dev/null || echo 24.2)
bootstrap="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if ! grep -q "ENSUREPIP_OPTIONS" "$bootstrap" 2>/dev/null; then
  mkdir -p "$(dirname "$bootstrap")"
  cat > "$bootstrap" <<'PY'
# peerlab stand-in for ansible-test's get-pip bootstrap (see tests/sanity.sh).
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip leaves PIP_CONFIG_FILE=/dev/null behind, which would hide the machine's pip.conf.
env = {key: value for key, value in os.environ.items() if key not in ("PIP_CONFIG_FILE", "ENSUREPIP_OPTIONS")}
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args], env=env)
PY
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target="$work/ansible_collections/peerlab/bitcoin"
mkdir -p "$target"
cd "$root"
# Tracked and new files only; `collections/` is the in-repo link back to this root.
git ls-files -co --exclude-standard | grep -v '^collections/' | tar -cf - -T - | tar -xf - -C "$target"
cd "$target"
git init -q && git add -A >/dev/null
"$root/.venv/bin/ansible-test" sanity --python 3.11 --color no "$@"
