#!/usr/bin/env bash
# One command for the load benchmarks (issue 8): installs wrk (apt) and the Portkey gateway (npm, into
# .artifacts/), builds Release, runs the ext_proc load generator (ExtProc against the echo processor, open
# loop) and the end-to-end comparison (direct / harness + echo / harness + ExtProc / Portkey), and writes
# bench/results/<UTC date>-loadgen.md with its chart (.svg).
#
#   bench/run.sh                   # short profile (~8 min on 2 cores)
#   PROFILE=smoke bench/run.sh     # ~1.5 min, proves the pipeline works
#   bench/run.sh --rates 500,1000 --mixes headers,10kb --step-seconds 10   # extra args go to the load generator
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-short}
PORTKEY_VERSION=1.15.2
PORTKEY_DIR=.artifacts/portkey
PORTKEY_JS=$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v wrk >/dev/null; then
  echo "== installing wrk (apt)"
  sudo_if_needed apt-get update -qq
  sudo_if_needed apt-get install -y -qq wrk >/dev/null
fi

PORTKEY_ARGS=()
if [ -f "$PORTKEY_JS" ] || { command -v npm >/dev/null && mkdir -p "$PORTKEY_DIR" &&
     echo "== installing @portkey-ai/gateway@$PORTKEY_VERSION into $PORTKEY_DIR" &&
     npm install --prefix "$PORTKEY_DIR" --no-audit --no-fund --loglevel=error "@portkey-ai/gateway@$PORTKEY_VERSION" >/dev/null; }; then
  if command -v node >/dev/null && [ -f "$PORTKEY_JS" ]; then PORTKEY_ARGS=(--portkey "$PORTKEY_JS"); fi
fi
[ ${#PORTKEY_ARGS[@]} -eq 0 ] && echo "== Portkey unavailable (no npm/node): measured without it"

echo "== building Release"
dotnet build -c Release -v quiet -nologo bench/ExtProc.LoadGen/ExtProc.LoadGen.csproj >/dev/null

COMMIT=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . ':!bench/results' || COMMIT="$COMMIT+dirty"
OUT=bench/results/$(date -u +%F)-loadgen.md
[ "$PROFILE" = smoke ] && OUT=.artifacts/loadgen/$(date -u +%F)-smoke.md && mkdir -p .artifacts/loadgen

# Two or more cores: the load generator (and wrk, the mock, which it starts) on core 0; it pins the
# servers it starts to core 1.
PIN=()
if [ "$(nproc)" -ge 2 ]; then PIN=(taskset -c 0); fi

echo "== running profile $PROFILE -> $OUT"
"${PIN[@]}" bench/ExtProc.LoadGen/bin/Release/net10.0/ExtProc.LoadGen run \
  --profile "$PROFILE" --out "$OUT" --commit "$COMMIT" "${PORTKEY_ARGS[@]}" "$@"
