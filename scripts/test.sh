#!/usr/bin/env bash
# Sets up and runs every test of the project on a fresh machine of the project's kind
# (Rust toolchain with rustfmt and clippy, CPython 3 for the independent client test).
# Everything else it needs (crates, the Python gRPC client) it fetches itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

for tool in cargo python3; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required but not installed" >&2; exit 1; }
done
scripts/need-openssl.sh
# The statistics page is tested in headless Chromium (tests/e2e/page.rs).
KPR_TEST_CHROMIUM="$(scripts/need-chromium.sh)"
export KPR_TEST_CHROMIUM
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

echo "== format"
cargo fmt --all -- --check

echo "== lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build"
cargo build --workspace --all-targets --locked

echo "== Kafka-protocol broker (tansu) on 127.0.0.1 for the Kafka conformance suite"
tansu="$(scripts/kafka-broker.sh)"
broker_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
broker_dir="$(mktemp -d)"
(cd "$broker_dir" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$broker_port" \
    --advertised-listener-url "tcp://127.0.0.1:$broker_port" --storage-engine memory://tansu/ \
    > "$logs/tansu.log" 2>&1) &
broker_pid=$!
trap 'kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; rm -rf "$logs" "$broker_dir"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$logs/tansu.log" >&2; echo "test.sh: the broker did not start" >&2; exit 1; }
  sleep 0.1
done
export KPR_TEST_KAFKA_BROKERS="127.0.0.1:$broker_port"
# The TLS test of the Kafka backend starts a broker of its own behind a TLS front.
export KPR_TEST_TANSU="$tansu"

echo "== Rust tests (unit, conformance, end-to-end incl. the SIGKILL crash test)"
cargo test --workspace --locked 2>&1 | tee "$logs/cargo.txt"

echo "== independent Python client (grpcio-tools) against the real binary"
KPR_BIN="$PWD/target/debug/kpr" scripts/python-client-test.sh 2>&1 | tee "$logs/python.txt"

# One closing line with the totals of both runners (each has already passed here).
rust_passed=$(grep -oE 'test result: ok\. [0-9]+ passed' "$logs/cargo.txt" | awk '{s += $4} END {print s + 0}')
python_ran=$(grep -oE '^Ran [0-9]+ tests?' "$logs/python.txt" | awk '{s += $2} END {print s + 0}')
# Each Python test file (at least two: JSON-stat golden, gRPC client) prints its own
# "Ran N tests" and must close with a line exactly "OK".
python_runs=$(grep -cE '^Ran [0-9]+ tests?' "$logs/python.txt" || true)
python_ok=$(grep -cx 'OK' "$logs/python.txt" || true)
if (( python_runs < 2 || python_ok != python_runs )); then
  echo "test.sh: the Python tests did not all report OK ($python_ok OK for $python_runs runs)" >&2
  exit 1
fi
echo "$((rust_passed + python_ran)) passed, 0 failed"
