#!/usr/bin/env bash
# The web chat's checks (docs/web.md), as CI runs them: `bash web/test/run.sh target/debug/echo`.
#   1. npm ci in clients/ts and web (exact pins, package-lock.json);
#   2. the generated TypeScript (buf generate, buf.gen.yaml) and the bundle (web/build.mjs) on
#      disk are exactly what generation makes now: a proto or source change without
#      regenerating fails here (the committed files are what `cargo build` embeds);
#   3. tsc --noEmit over clients/ts and web;
#   4. the browser journey (web/test/chat.test.mjs) in headless Chromium, both backends.
set -euo pipefail
bin=$(realpath "${1:?usage: run.sh path/to/echo}")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

if [[ ! -x /usr/bin/chromium ]]; then
    echo "run.sh: /usr/bin/chromium is missing: apt-get install -y --no-install-recommends chromium" >&2
    exit 1
fi

npm ci --prefix clients/ts --no-audit --no-fund --silent
npm ci --prefix web --no-audit --no-fund --silent

generated=(clients/ts/src/gen web/dist)
digest() { find "${generated[@]}" -type f -print0 | sort -z | xargs -0 sha256sum; }
before=$(digest)
clients/ts/node_modules/.bin/buf generate
node web/build.mjs
after=$(digest)
if [[ "$before" != "$after" ]]; then
    echo "run.sh: generated code or bundle was not current; regenerated (commit the result):" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    exit 1
fi
echo "run.sh: clients/ts/src/gen and web/dist are current"

(cd clients/ts && node_modules/.bin/tsc --noEmit -p .)
(cd web && node_modules/.bin/tsc --noEmit -p .)
echo "run.sh: tsc clean"

# Ports for the echo processes (3 per backend), held while this script lives (scripts/ports.py).
WEB_TEST_PORTS=$(python3 scripts/ports.py 6 --for $$)
export WEB_TEST_PORTS
node web/test/chat.test.mjs "$bin"
