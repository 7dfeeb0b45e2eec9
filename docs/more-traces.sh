#!/usr/bin/env bash
# more-traces.sh DIR: downloads the public cache traces that Caffeine's simulator
# ships (github.com/ben-manes/caffeine, simulator/src/main/resources, Apache-2.0;
# the cache2k traces under their LICENSE.txt there) and converts them into DIR as
# *.keys.gz (one decimal key per line) with DIR/capacities.txt, for
#   go run ./cmd/offheap bench --cases '^hit-' --cache-traces DIR cache
# Traces: cache2k web07, web12 (web), orm-busy, orm-night (database); CloudPhysics
# w106 (block storage); Scarab recs (recommendations); Corda vaultservice; the
# LIRS paper's multi1, multi3, zigzag, scan, cpp, backf; AdaptSize's request trace
# (CDN). The binary ones are big-endian integers, as Caffeine's readers read them.
set -euo pipefail
dir=${1:?usage: more-traces.sh DIR}
mkdir -p "$dir"
src=https://raw.githubusercontent.com/ben-manes/caffeine/master/simulator/src/main/resources/com/github/benmanes/caffeine/cache/simulator/parser
get() { curl -fsSL "$src/$1"; }
be() { od -An -v -t "u$1" --endian=big -w"$1" | tr -d ' '; } # big-endian integers, one per line
for t in web07 web12 orm-busy orm-night; do get "cache2k/$t.trace.xz" | xz -d | be 4 | gzip >"$dir/$t.keys.gz"; done
get cloud_physics/w106.trace.xz | xz -d | be 4 | gzip >"$dir/w106.keys.gz"
get scarab/scarab-recs.trace.xz | xz -d | be 8 | gzip >"$dir/scarab-recs.keys.gz"
get corda/trace_vaultservice.gz | gzip -d | be 8 | gzip >"$dir/corda.keys.gz"
for t in multi1 multi3 zigzag scan cpp backf; do
  get "lirs/$t.trace.gz" | gzip -d | grep -v -e '^\*$' -e '^$' | gzip >"$dir/lirs_$t.keys.gz"
done
get adapt_size/request.trace.xz | xz -d | awk '{print $2}' | gzip >"$dir/adapt_size.keys.gz"
cat >"$dir/capacities.txt" <<'CAPS'
# trace, then the capacities (entries) to replay it at
web07 1000 2500 5000
web12 500 1000 2500
orm-busy 2500 5000 10000
orm-night 2500 5000 10000
w106 25000 50000 100000
scarab-recs 25000 50000 100000
corda 5000 10000 25000
lirs_multi1 100 500 1000
lirs_multi3 400 1500 3000
lirs_zigzag 500 1000 1900
lirs_scan 500 1000 1900
lirs_cpp 100 300 600
lirs_backf 100 300 600
adapt_size 1000 5000 10000
CAPS
