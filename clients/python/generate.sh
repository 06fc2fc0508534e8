#!/usr/bin/env bash
# Regenerates the committed Python stubs of clients/python/src/echo/ from proto/ with the pinned
# grpcio-tools (messages, .pyi type stubs, gRPC stubs). CI runs it and fails on any difference
# (`git diff --exit-code`), so the committed code always matches the protos.
#
#   bash clients/python/generate.sh            # a private venv with the pin, reused across runs
#   ECHO_GEN_PYTHON=/path/to/python bash ...   # a Python that already has exactly the pin
#   ECHO_GEN_OUT=/tmp/x bash ...                # write /tmp/x/echo instead (tests/run.sh diffs it)
#
# Why not buf.gen.yaml: buf drives protoc plugins (executables speaking CodeGeneratorRequest)
# or a protoc binary's built-in generators. grpcio-tools ships neither: its protoc and the
# grpc_python plugin are compiled into a Python extension, reachable only as
# `python -m grpc_tools.protoc`. Wrapping that as a fake plugin would re-implement protoc's
# driver; calling it directly is the documented way to use grpcio-tools.
set -euo pipefail

readonly GRPCIO_TOOLS=1.85.1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${ECHO_GEN_OUT:-$here/src}

tools_version() { "$1" -c 'from importlib.metadata import version; print(version("grpcio-tools"))' 2>/dev/null || true; }
python=${ECHO_GEN_PYTHON:-}
if [[ -z $python ]]; then
    venv=${TMPDIR:-/tmp}/echo-python-gen-$GRPCIO_TOOLS
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    python=$venv/bin/python
    # Also repairs a venv left half-installed by an interrupted run.
    if [[ $(tools_version "$python") != "$GRPCIO_TOOLS" ]]; then
        "$python" -m pip install --quiet --disable-pip-version-check "grpcio-tools==$GRPCIO_TOOLS"
    fi
fi
have=$(tools_version "$python")
[[ $have == "$GRPCIO_TOOLS" ]] || { echo "generate.sh: need grpcio-tools $GRPCIO_TOOLS, $python has $have" >&2; exit 1; }

# The public API only: the bus events (echo/events) and the *_internal.proto contracts are for
# Echo's own services, which the public port refuses.
mapfile -t protos < <(cd "$repo/proto" && find echo -name '*.proto' ! -path 'echo/events/*' ! -name '*_internal.proto' | LC_ALL=C sort)
rm -rf "$out/echo"
mkdir -p "$out"
well_known=$("$python" -c 'import os, grpc_tools; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
(cd "$repo/proto" && "$python" -m grpc_tools.protoc --proto_path=. --proto_path="$well_known" \
    --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]}")
# Regular packages (not namespace ones): `import echo.message.v1` finds these files only.
find "$out/echo" -type d -exec sh -c 'for d; do : >"$d/__init__.py"; done' sh {} +
echo "generate.sh: ${#protos[@]} protos -> ${out#"$repo"/}/echo (grpcio-tools $GRPCIO_TOOLS)"
