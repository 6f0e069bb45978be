#!/usr/bin/env bash
# Sets up and runs the register on its embedded default (sled) with demo data:
# builds `kpr`, starts `kpr serve` on 127.0.0.1:50051 with a fresh data directory,
# pushes the deterministic demo population through the gRPC API, prints what the log
# holds, and keeps serving until Ctrl-C (or stops at once with --once).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
once=0
[ "${1:-}" = "--once" ] && once=1

command -v cargo >/dev/null || { echo "demo.sh: cargo is required but not installed" >&2; exit 1; }
cargo build --release --locked -p kpr
kpr=target/release/kpr
data=${KPR_DEMO_DATA:-target/demo-data}
addr=${KPR_DEMO_ADDR:-127.0.0.1:50051}
rm -rf "$data"

"$kpr" serve --data "$data" --addr "$addr" --allow-synthetic-ids &
server=$!
stop() { kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap stop EXIT INT TERM

"$kpr" demo --endpoint "http://$addr"
if [ "$once" = 1 ]; then
  stop
  trap - EXIT INT TERM
  "$kpr" inspect --data "$data"
  "$kpr" verify --data "$data"
  exit 0
fi
echo "the register is serving on $addr (gRPC: kpr.v1.IngestService, health, reflection); Ctrl-C stops it"
wait "$server"
