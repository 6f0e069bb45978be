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
scripts/need-openssl.sh
cargo build --release --locked -p kpr
kpr=target/release/kpr
data=${KPR_DEMO_DATA:-target/demo-data}
addr=${KPR_DEMO_ADDR:-127.0.0.1:50051}
rm -rf "$data"

stats_addr=${KPR_DEMO_STATS_ADDR:-127.0.0.1:8080}
admin_addr=${KPR_DEMO_ADMIN_ADDR:-127.0.0.1:8081}
"$kpr" serve --data "$data" --addr "$addr" --stats-addr "$stats_addr" --admin-addr "$admin_addr" --allow-synthetic-ids &
server=$!
stop() { kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap stop EXIT INT TERM

# The register checks a token on every call: the demo mints one per municipality (and
# `kpr stats --exact` an operator one) from the local issuer `kpr serve` made in "$data".
"$kpr" demo --endpoint "http://$addr" --issuer-data "$data"
year=$(( $(date +%Y) - 1 ))
sleep 1   # let the projector fold the last batches
echo "-- I3, inhabitants 80+ with home services, 31.12.$year, per region (disclosure-controlled):"
for region in EAK 0301 EK46; do
  "$kpr" stats I3 --region "$region" --year "$year" --endpoint "http://$stats_addr"
done
echo "-- I16, waiting time from decision to start, $year (exact, from the admin listener):"
"$kpr" stats I16 --year "$year" --exact --admin-endpoint "http://$admin_addr" --issuer-data "$data"
if [ "$once" = 1 ]; then
  stop
  trap - EXIT INT TERM
  "$kpr" inspect --data "$data"
  "$kpr" verify --data "$data"
  "$kpr" audit verify --data "$data"
  exit 0
fi
echo "the register is serving: gRPC on $addr (IngestService, StatisticsService, health, reflection),"
echo "statistics on http://$stats_addr/v1/tables/{figure}?region=EAK&year=$year&format=csv, admin on http://$admin_addr"
echo "(operator token: $kpr auth token --data $data --role operator; every call is in: $kpr audit --data $data); Ctrl-C stops it"
wait "$server"
