"""Generates the sandbox.v1 gRPC stubs into agentfense/_stubs at build/install time.

Why here: the stubs are generated code and are never committed or edited by hand; pyproject.toml cannot
run protoc, and PyPI's grpcio-tools is not available offline, so we run the system `protoc` with
`grpc_python_plugin` (the same tools the CMake build uses) on ../../proto/sandbox/v1/*.proto. The
output keeps protoc's own layout (`sandbox/v1/*_pb2.py`, importing `from sandbox.v1 import ...`);
agentfense/_proto.py puts agentfense/_stubs on sys.path only when no `sandbox.v1` (e.g. the CMake
build's <build>/python) is importable already.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
PROTO_ROOT = Path(os.environ.get("AGENTFENSE_PROTO_DIR", HERE.parent.parent / "proto"))
NAMES = ("common", "sandbox", "codebase")


def generate_stubs(out_root: Path) -> None:
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    protos = [PROTO_ROOT / "sandbox" / "v1" / f"{n}.proto" for n in NAMES]
    missing = [str(p) for p in protos if not p.is_file()]
    if missing:
        raise SystemExit(f"agentfense: proto files not found: {missing} (set AGENTFENSE_PROTO_DIR)")
    if not protoc or not plugin:
        raise SystemExit("agentfense: needs `protoc` and `grpc_python_plugin` on PATH "
                         "(Debian: protobuf-compiler protobuf-compiler-grpc)")
    out_root.mkdir(parents=True, exist_ok=True)
    subprocess.run([protoc, f"-I{PROTO_ROOT}", f"--python_out={out_root}",
                    f"--grpc_python_out={out_root}", f"--plugin=protoc-gen-grpc_python={plugin}",
                    *[f"sandbox/v1/{n}.proto" for n in NAMES]], check=True)
    for pkg in (out_root, out_root / "sandbox", out_root / "sandbox" / "v1"):
        init = pkg / "__init__.py"
        if not init.exists():
            init.write_text("# Generated package marker (agentfense setup.py).\n")


STUBS = HERE / "agentfense" / "_stubs"

# Generated whenever setup.py runs (metadata, wheel and editable builds all run it, and the package
# list names agentfense._stubs), into the source tree: editable installs import from there and
# wheels copy it like any other module. From an sdist, which already carries the stubs and has no
# ../../proto, they are kept as they are.
if PROTO_ROOT.is_dir() or not (STUBS / "sandbox" / "v1" / "sandbox_pb2.py").is_file():
    generate_stubs(STUBS)

setup()
