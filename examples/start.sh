#!/usr/bin/env bash
# Starts tsnet-dns on the sample records with the example upstream, both on loopback:
# ask it with `dig @127.0.0.1 -p 5353 web`. Ctrl-C stops both. PORT and UPSTREAM_PORT move them.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-5353}
upstream_port=${UPSTREAM_PORT:-5300}
node examples/upstream.mjs "$upstream_port" &
upstream=$!
trap 'kill $upstream 2>/dev/null' EXIT
./bin/tsnet-dns --records examples/records.json --listen "127.0.0.1:$port" --upstream "127.0.0.1:$upstream_port" "$@"
