# Shared by scripts/dev and scripts/test: where things live, and how to install and start the
# tools the project needs. Everything installs on first use, into a cache outside the checkout,
# and is reused after that.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE_DIR="${NANGO_CONNECT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nango-connect}"
DYNAMODB_LOCAL_VERSION="2.9.30"   # amplify-dynamodb-simulator, which ships DynamoDB Local 1.25.1
DYNAMODB_LOCAL_DIR="$CACHE_DIR/dynamodb-local-$DYNAMODB_LOCAL_VERSION"
VENV_DIR="$CACHE_DIR/venv"
TABLE_DEFINITION="$REPO_ROOT/infra/dynamodb/connections-table.json"
# UpdateTimeToLive's input: CreateTable's cannot carry a time to live.
TABLE_TTL="$REPO_ROOT/infra/dynamodb/connections-table-ttl.json"
# The token buckets' table (shared/src/rate_limit.rs); its items expire by the same attribute.
RATE_LIMIT_TABLE_DEFINITION="$REPO_ROOT/infra/dynamodb/rate-limit-table.json"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Amazon's DynamoDB Local, from the npm package that ships its jar (none of its npm dependencies
# are needed). Java 17 runs it.
ensure_dynamodb_local() {
  [ -f "$DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar" ] && return 0
  command -v java >/dev/null || die "java is required for DynamoDB Local"
  log "installing DynamoDB Local (npm: amplify-dynamodb-simulator@$DYNAMODB_LOCAL_VERSION)"
  local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "amplify-dynamodb-simulator@$DYNAMODB_LOCAL_VERSION" >/dev/null \
     && tar xzf "amplify-dynamodb-simulator-$DYNAMODB_LOCAL_VERSION.tgz")
  mkdir -p "$CACHE_DIR"
  rm -rf "$DYNAMODB_LOCAL_DIR"
  mv "$tmp/package/emulator" "$DYNAMODB_LOCAL_DIR"
  rm -rf "$tmp"
}

# start_dynamodb_local PORT [DATA_DIR]: in memory without DATA_DIR. Sets DYNAMODB_PID.
start_dynamodb_local() {
  local port="$1" data="${2:-}" storage=(-inMemory)
  if [ -n "$data" ]; then mkdir -p "$data"; storage=(-dbPath "$data"); fi
  # Run from the cache: DynamoDB Local writes a metadata file into its working directory.
  (cd "$CACHE_DIR" && exec java -Djava.library.path="$DYNAMODB_LOCAL_DIR/DynamoDBLocal_lib" \
    -jar "$DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar" -port "$port" "${storage[@]}" -sharedDb -disableTelemetry \
    >"$CACHE_DIR/dynamodb-local-$port.log" 2>&1) &
  DYNAMODB_PID=$!
}

# wait_for_http URL SECONDS: until anything answers.
wait_for_http() {
  local url="$1" seconds="${2:-30}" i
  for ((i = 0; i < seconds * 10; i++)); do
    curl -s -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  die "nothing answered at $url after ${seconds}s"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# dynamodb_call ENDPOINT TARGET JSON: one DynamoDB API call. DynamoDB Local checks only that a
# credential is named, not the signature.
dynamodb_call() {
  curl -s --max-time 10 -X POST "$1" \
    -H "X-Amz-Target: DynamoDB_20120810.$2" \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    --data "$3"
}

# create_table ENDPOINT: the connections table from its one definition, unless it exists, with its
# time to live.
create_table() {
  local endpoint="$1" name
  name="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["TableName"])' "$TABLE_DEFINITION")"
  local description
  description="$(dynamodb_call "$endpoint" DescribeTable "{\"TableName\":\"$name\"}")"
  if grep -q '"TableStatus"' <<<"$description"; then
    # A table kept from before the stream existed (.local/dynamodb) gets it now.
    if ! grep -q '"StreamEnabled":true' <<<"$description"; then
      dynamodb_call "$endpoint" UpdateTable \
        "{\"TableName\":\"$name\",\"StreamSpecification\":{\"StreamEnabled\":true,\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}" \
        | grep -q '"TableDescription"' || die "could not enable the stream of table $name"
    fi
  else
    dynamodb_call "$endpoint" CreateTable "$(cat "$TABLE_DEFINITION")" | grep -q '"TableDescription"' \
      || die "could not create table $name at $endpoint"
  fi
  enable_ttl "$endpoint" "$name"
}

# create_rate_limit_table ENDPOINT: the token buckets' table, unless it exists, with its time to
# live; prints its name.
create_rate_limit_table() {
  local endpoint="$1" name
  name="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["TableName"])' "$RATE_LIMIT_TABLE_DEFINITION")"
  if ! dynamodb_call "$endpoint" DescribeTable "{\"TableName\":\"$name\"}" | grep -q '"TableStatus"'; then
    dynamodb_call "$endpoint" CreateTable "$(cat "$RATE_LIMIT_TABLE_DEFINITION")" | grep -q '"TableDescription"' \
      || die "could not create table $name at $endpoint"
  fi
  enable_ttl "$endpoint" "$name"
  echo "$name"
}

# relax_rate_limits: each caller's share and the Nango budget raised far above the template's
# defaults (unless set), for a stack that test suites drive: they send hundreds of requests a minute
# as one user, and the emulator has no rate limit to protect. The limits themselves are tested in
# shared/tests/it/limits.rs against DynamoDB Local.
relax_rate_limits() {
  export USER_REQUESTS_PER_MINUTE="${USER_REQUESTS_PER_MINUTE:-100000}" USER_BURST="${USER_BURST:-10000}"
  export ORGANIZATION_REQUESTS_PER_MINUTE="${ORGANIZATION_REQUESTS_PER_MINUTE:-100000}"
  export ORGANIZATION_BURST="${ORGANIZATION_BURST:-10000}"
  export NANGO_REQUESTS_PER_MINUTE="${NANGO_REQUESTS_PER_MINUTE:-100000}" NANGO_BURST="${NANGO_BURST:-10000}"
}

# enable_ttl ENDPOINT TABLE: the time to live of infra/dynamodb/connections-table-ttl.json, unless it is
# on already (DynamoDB refuses to enable it twice).
enable_ttl() {
  local endpoint="$1" name="$2" input
  dynamodb_call "$endpoint" DescribeTimeToLive "{\"TableName\":\"$name\"}" | grep -q '"TimeToLiveStatus":"ENABL' \
    && return 0
  input="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["TableName"]=sys.argv[2]; print(json.dumps(d))' \
    "$TABLE_TTL" "$name")"
  dynamodb_call "$endpoint" UpdateTimeToLive "$input" | grep -q '"TimeToLiveSpecification"' \
    || die "could not enable the time to live of table $name at $endpoint"
}

# The Python tools: SAM CLI, cfn-lint and cargo-lambda (with zig), in one virtual environment.
ensure_python_tools() {
  if [ -x "$VENV_DIR/bin/sam" ] && [ -x "$VENV_DIR/bin/cfn-lint" ] && [ -x "$VENV_DIR/bin/cargo-lambda" ]; then
    return 0
  fi
  log "installing aws-sam-cli, cfn-lint and cargo-lambda (PyPI) into $VENV_DIR"
  python3 -m venv "$VENV_DIR"
  "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check aws-sam-cli cfn-lint cargo-lambda
}

# Schemathesis (PyPI), the outside API tester scripts/schemathesis runs: an exact version, in a
# virtual environment of its own named after it, so that changing the pin installs afresh and SAM
# CLI's pinned dependencies (the venv above) never have to agree with Schemathesis's.
SCHEMATHESIS_VERSION="4.32.5"
SCHEMATHESIS_VENV="$CACHE_DIR/schemathesis-$SCHEMATHESIS_VERSION"
ensure_schemathesis() {
  [ -x "$SCHEMATHESIS_VENV/bin/st" ] && return 0
  log "installing schemathesis==$SCHEMATHESIS_VERSION (PyPI) into $SCHEMATHESIS_VENV"
  rm -rf "$SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

# npm_ci_if_stale DIR WHAT: the packages of DIR's package-lock.json, unless already installed.
npm_ci_if_stale() {
  local dir="$1" what="$2"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing $what npm packages"
    (cd "$dir" && npm ci --silent --no-audit --no-fund)
  fi
}

# The demo page's packages (the Nango frontend SDK, Playwright's driver), from npm.
ensure_demo_packages() { npm_ci_if_stale "$REPO_ROOT/infra/demo" "the demo page's"; }

# The local gateway's packages (jose, for the JWT authorizer and the local OIDC issuer), from npm.
ensure_gateway_packages() { npm_ci_if_stale "$REPO_ROOT/infra/local-gateway" "the local gateway's"; }

# The contract's tools (infra/openapi): the response checker, redocly, openapi-typescript, and the
# API reference page's viewer (swagger-ui-dist), from npm.
ensure_openapi_packages() { npm_ci_if_stale "$REPO_ROOT/infra/openapi" "the API contract tools'"; }

# Debian's Chromium, for the demo page's browser test (Playwright drives it; it downloads nothing).
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  [ "$(id -u)" -eq 0 ] || die "the browser test needs Debian's chromium: sudo apt-get install -y chromium"
  log "installing Chromium (apt)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# run_suite NAME COMMAND...: runs a test suite, shows its output, and adds its counts (cargo's
# "N passed; M failed", node's "# pass N" / "# fail M") to the totals printed by print_totals.
TOTAL_PASSED=0
TOTAL_FAILED=0
SUITE_LOG="$(mktemp)"
run_suite() {
  local name="$1"; shift
  log "$name"
  local status=0
  "$@" 2>&1 | tee "$SUITE_LOG" || status=$?
  local passed failed
  # A suite that counts nothing (a benchmark's smoke run) adds nothing; grep finding no line must
  # not end the script under `set -e -o pipefail`.
  passed=$({ grep -Eo '(test result: [a-zA-Z]+\. [0-9]+ passed|^# pass [0-9]+)' "$SUITE_LOG" || true; } | { grep -Eo '[0-9]+' || true; } | awk '{s+=$1} END {print s+0}')
  failed=$({ grep -Eo '([0-9]+ failed;|^# fail [0-9]+)' "$SUITE_LOG" || true; } | { grep -Eo '[0-9]+' || true; } | awk '{s+=$1} END {print s+0}')
  TOTAL_PASSED=$((TOTAL_PASSED + ${passed:-0}))
  TOTAL_FAILED=$((TOTAL_FAILED + ${failed:-0}))
  [ "$status" -eq 0 ] || { print_totals; die "$name failed"; }
}

print_totals() {
  echo "tests: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
}
