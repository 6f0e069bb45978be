#!/usr/bin/env bash
# The Python tests of tests/python/, each with the stdlib unittest runner:
#   1. test_jsonstat_golden.py: the JSON-stat/CSV golden files of kpr-statistics read
#      with an independent reader (pyjstat);
#   2. oracle.py: the independent SPEC 5 oracle, every exact cell compared;
#   3. test_deploy_files.py: the compose file, Kubernetes manifests and Dockerfile of
#      deploy/ parsed and checked (every kpr role and flag against `kpr ROLE --help`);
#   4. test_statistics_api.py: the catalogue, metadata and data API read with pyjstat and
#      pandas against the real binary fed the demo population;
#   5. test_ingest_client.py: black-box test of the kpr gRPC API against the real binary.
#
# Sets up a virtualenv in target/pyenv (reused while tests/python/requirements.txt and
# the Python interpreter are unchanged), installs the pinned requirements as wheels and
# runs the tests with that venv's python; all always run, and the script exits
# non-zero when any fails. Build the server first:
#
#     cargo build -p kpr
#     scripts/python-client-test.sh            # uses target/debug/kpr
#     KPR_BIN=target/release/kpr scripts/python-client-test.sh
#
# Env: PYTHON (interpreter to create the venv with, default python3), KPR_BIN.
# Extra arguments go to the unittest runner of test_ingest_client.py (e.g. -k test_h).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

requirements="tests/python/requirements.txt"
venv="target/pyenv"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "python-client-test: interpreter '$python' not found (set PYTHON)" >&2
    exit 2
fi

# The stamp covers the requirements and the interpreter the venv was made from.
want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0], sys.executable)')"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "python-client-test: reusing $venv"
else
    echo "python-client-test: creating $venv"
    rm -rf "$venv"
    mkdir -p target
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --only-binary=:all: -r "$requirements"
    # Written last: an interrupted install is redone next time.
    printf '%s\n' "$want" > "$stamp"
fi

export KPR_BIN="${KPR_BIN:-$root/target/debug/kpr}"
if [[ ! -x "$KPR_BIN" ]]; then
    echo "python-client-test: kpr binary not found at $KPR_BIN (run: cargo build -p kpr)" >&2
    exit 2
fi

golden=0
"$venv/bin/python" tests/python/test_jsonstat_golden.py || golden=$?
oracle=0
# The independent oracle (written from SPEC 5 alone): every exact cell must agree.
"$venv/bin/python" tests/python/oracle.py --seed 1 || oracle=$?
statistics=0
# The statistics API as statisticians read it (pyjstat, pandas) against the real binary.
"$venv/bin/python" tests/python/test_statistics_api.py || statistics=$?
deploy=0
# deploy/ cannot run here (no Docker, Kubernetes or Apache Kafka): parsed and checked.
"$venv/bin/python" tests/python/test_deploy_files.py || deploy=$?
"$venv/bin/python" tests/python/test_ingest_client.py "$@" || exit $?
[ "$oracle" = 0 ] || exit "$oracle"
[ "$deploy" = 0 ] || exit "$deploy"
[ "$statistics" = 0 ] || exit "$statistics"
exit "$golden"
