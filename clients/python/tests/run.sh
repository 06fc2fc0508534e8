#!/usr/bin/env bash
# The Python client's check (CI step "python client", `just python-client`):
#   1. the committed stubs are current: generate.sh into a temporary directory, diff -r
#      against src/echo (stale, missing or extra files all fail);
#   2. the package installs as a user installs it: `pip install ./clients/python` into a
#      fresh venv (with tests/constraints.txt: the exact versions CI tests);
#   3. tests/journey.py, run by that venv's Python, passes against `echo` on embedded and on
#      real backends.
#
#   bash clients/python/tests/run.sh [path/to/echo]      # default: target/debug/echo
#   PYTHON_CLIENT_BACKENDS=embedded bash ...             # one backend only
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
package=$(cd "$here/.." && pwd)
repo=$(cd "$package/../.." && pwd)
bin=${1:-$repo/target/debug/echo}
[[ -x $bin ]] || { echo "python-client: FAIL: no executable at $bin (cargo build first)" >&2; exit 1; }
# Absolute: the journeys run from a temporary directory (CI passes target/debug/echo).
bin=$(realpath "$bin")
work=$(mktemp -d "${TMPDIR:-/tmp}/echo-python-client.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS
say() { echo "python-client: [$((SECONDS - started))s] $*"; }

ECHO_GEN_OUT=$work/gen bash "$package/generate.sh"
if ! diff -r -x __pycache__ "$work/gen/echo" "$package/src/echo" >"$work/gen.diff"; then
    head -n 40 "$work/gen.diff" >&2
    echo "python-client: FAIL: clients/python/src/echo is not what generate.sh makes from proto/: run bash clients/python/generate.sh and commit" >&2
    exit 1
fi
say "generated stubs are current"

python3 -m venv "$work/venv"
# A copy: pip builds in place, and the tree is shared (build/ and *.egg-info stay out of it).
cp -r "$package" "$work/package"
rm -rf "$work/package/src/echo_client.egg-info" "$work/package/build"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$here/constraints.txt" "$work/package"
say "installed: $("$work/venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null | grep -Ei '^(echo-client|grpcio|protobuf|googleapis) ' | tr -s ' ' | paste -sd, -)"

# From outside the tree, so that only the installed package can be imported. Both backends
# (the real ones are the shared local servers; ECHO_REQUIRE_SERVICES=1 makes their absence a
# failure, otherwise a skip).
for backend in ${PYTHON_CLIENT_BACKENDS:-embedded real}; do
    (cd "$work" && "$work/venv/bin/python" "$here/journey.py" --echo-bin "$bin" --backend "$backend")
done
say "PASS"
