"""Python gRPC stubs for Echo, generated from proto/ at run time.

Generated code is never committed: it would drift from the protos. Each run compiles proto/
with grpcio-tools into a private temporary directory (about a second), imports the modules
from there and removes the directory at exit.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

# The repository's proto/ directory, two levels above examples/live-client/.
DEFAULT_PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"

MODULES = {
    "auth": "echo.auth.v1.auth_pb2",
    "auth_grpc": "echo.auth.v1.auth_pb2_grpc",
    "conversation_api": "echo.message.v1.conversation_api_pb2",
    "message_api": "echo.message.v1.message_api_pb2",
    "live": "echo.message.v1.live_pb2",
    "message_grpc": "echo.message.v1.message_service_pb2_grpc",
}


class StubError(RuntimeError):
    """The protos could not be compiled."""


def load(proto_dir: Path = DEFAULT_PROTO_DIR) -> types.SimpleNamespace:
    """Compiles every .proto under `proto_dir` and returns the modules the client uses."""
    # Imported here so that `--help` works before the requirements are installed.
    from grpc_tools import protoc

    protos = sorted(str(path) for path in proto_dir.rglob("*.proto"))
    if not protos:
        raise StubError(f"no .proto files under {proto_dir}")
    out_dir = tempfile.mkdtemp(prefix="echo-live-client-stubs.")
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
    # The well-known types (google/protobuf/*.proto) ship inside grpcio-tools.
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={proto_dir}",
            f"--proto_path={well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *protos,
        ]
    )
    if status != 0:
        raise StubError(f"protoc exited with {status} compiling {proto_dir}")
    # Regular packages, so that no other `echo` package on sys.path can shadow these.
    for directory, _, _ in os.walk(os.path.join(out_dir, "echo")):
        Path(directory, "__init__.py").touch()
    sys.path.insert(0, out_dir)
    return types.SimpleNamespace(
        **{name: importlib.import_module(module) for name, module in MODULES.items()}
    )
