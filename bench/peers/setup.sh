#!/usr/bin/env bash
# Install the peers that live in their own virtualenv: bench/.venvs/litellm, from
# bench/peers/requirements-litellm.txt. Idempotent: a stamp named after the requirements'
# hash skips the install when nothing changed; a changed file reinstalls into a fresh venv.
# The other peers (bare_loop, sdk_script) run in datamill's own .venv and need nothing here.
#
#   bench/peers/setup.sh            PYTHON=python3.11 by default (the Makefile passes its own)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="$(cd "$here/.." && pwd)/.venvs"
python="${PYTHON:-python3.11}"
requirements="$here/requirements-litellm.txt"
venv="$venvs/litellm"
stamp="$venv/.installed-$(sha1sum "$requirements" | cut -c1-12)"

if [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then
  echo "peers: $venv is up to date"
  exit 0
fi

version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != "3.11" ]; then
  echo "peers: $python is Python $version; the LiteLLM pins are for 3.11 (set PYTHON=...)" >&2
  exit 1
fi

echo "peers: installing LiteLLM into $venv"
rm -rf "$venv"
mkdir -p "$venvs"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
"$venv/bin/pip" check
touch "$stamp"
echo "peers: $venv ready"
