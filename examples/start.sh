#!/usr/bin/env bash
# Starts tsnet-dns on the sample records with the example upstream, both on loopback:
# ask it with `dig @127.0.0.1 -p 5353 web`. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
node examples/upstream.mjs 5300 &
upstream=$!
trap 'kill $upstream 2>/dev/null' EXIT
./bin/tsnet-dns --records examples/records.json --listen 127.0.0.1:5353 --upstream 127.0.0.1:5300 "$@"
