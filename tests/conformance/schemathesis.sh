#!/usr/bin/env bash
# API conformance (issue 7): schemathesis generates requests from the reference portal's own
# OpenAPI document (GET /openapi.json) and checks every answer against it — no 5xx (nothing is
# injected here, so any 5xx is a bug), and every status code, content type and body as documented.
#
#   tests/conformance/schemathesis.sh            # builds the binary if ROLECALL_BIN is unset
#   SCHEMATHESIS_MAX_EXAMPLES=200 tests/conformance/schemathesis.sh   # a longer run
#
# schemathesis is installed once per machine into a virtualenv outside the repository, pinned so
# that a new release cannot change what CI checks without a commit here.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=4.32.5
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/rolecall-tools/schemathesis-$VERSION"
# Bounded so that the run ends in a few minutes on two cores; the seed makes a finding reproducible.
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
SEED="${SCHEMATHESIS_SEED:-7}"

if [[ ! -x "$VENV/bin/schemathesis" ]]; then
    echo "installing schemathesis $VERSION into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi

BIN="${ROLECALL_BIN:-}"
if [[ -z "$BIN" ]]; then
    cargo build --locked --quiet
    BIN=target/debug/rolecall
fi

WORK="$(mktemp -d)"
PORTAL_PID=""
cleanup() {
    if [[ -n "$PORTAL_PID" ]]; then kill "$PORTAL_PID" 2>/dev/null || true; wait "$PORTAL_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A fresh token per run; it only ever exists in this process tree and the temporary database.
TOKEN="conformance-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
ROLECALL_SANDBOX_TOKEN="$TOKEN" "$BIN" portal serve --db "$WORK/portal.db" --listen 127.0.0.1:0 \
    >"$WORK/stdout" 2>"$WORK/portal.log" &
PORTAL_PID=$!

URL=""
for _ in $(seq 1 100); do
    URL="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/stdout" | head -n1 || true)"
    [[ -n "$URL" ]] && break
    if ! kill -0 "$PORTAL_PID" 2>/dev/null; then
        echo "the portal did not start:" >&2; cat "$WORK/portal.log" >&2; exit 1
    fi
    sleep 0.1
done
[[ -n "$URL" ]] || { echo "the portal printed no address" >&2; exit 1; }

# Real data to work on: the examples' three accounts with their members, invitations and
# contacts, made by rolecall itself.
ROLECALL_PORTAL="$URL" ROLECALL_TOKEN="$TOKEN" "$BIN" apply -f examples/ --auto-approve >/dev/null

SEEDED="$(grep -c . "$WORK/portal.log" || true)"
START=$SECONDS
set +e
# From the temporary directory: schemathesis keeps a cache (.schemathesis/) in its working
# directory, which must not land in the repository.
CONFIG="$PWD/tests/conformance/schemathesis.toml"
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$URL/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --request-timeout 10 \
    --report junit --report-junit-path "$WORK/junit.xml" \
    --output-sanitize true \
    --no-color)
STATUS=$?
set -e

# The portal logs a line per request: the figure to report, whatever schemathesis counts.
REQUESTS="$(( $(grep -c . "$WORK/portal.log" || true) - SEEDED ))"
echo "schemathesis $VERSION: exit $STATUS, $REQUESTS requests to the portal in $((SECONDS - START)) s (max $MAX_EXAMPLES examples per operation, seed $SEED)"
if ! kill -0 "$PORTAL_PID" 2>/dev/null; then
    echo "the portal died during the run:" >&2; tail -n 50 "$WORK/portal.log" >&2; exit 1
fi
exit "$STATUS"
