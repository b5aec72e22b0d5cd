"""Generate Python code and mypy stubs for protos/ into switchyard/v1/.

Usage: python -m scripts.gen_protos [--check]

With --check, generate into a temporary directory and fail when the result differs
from the committed files (CI runs this so the committed code never drifts).
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.resources
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("switchyard") / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _include_dirs() -> list[str]:
    grpc_tools_protos = importlib.resources.files("grpc_tools") / "_proto"
    spec = importlib.util.find_spec("google.rpc.status_pb2")
    assert spec is not None and spec.origin is not None
    googleapis = Path(spec.origin).parent.parent.parent
    return [str(PROTO_ROOT), str(grpc_tools_protos), str(googleapis)]


def generate(out_dir: Path) -> None:
    """Run protoc with the grpc and mypy plugins, writing under out_dir."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    bindir = Path(sys.executable).parent
    args = ["protoc", *(f"-I{d}" for d in _include_dirs())]
    args += [f"--plugin=protoc-gen-{name}={bindir / f'protoc-gen-{name}'}" for name in ("mypy", "mypy_grpc")]
    args += [f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    args += [f"--mypy_out={out_dir}", f"--mypy_grpc_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_dir / PACKAGE_DIR / "__init__.py").write_text('"""Generated gRPC code for switchyard.v1."""\n')


def _generated_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        committed_dir = ROOT / PACKAGE_DIR
        fresh_dir = fresh / PACKAGE_DIR
        names = _generated_files(fresh_dir) | _generated_files(committed_dir)
        stale = [n for n in sorted(names) if not _same(fresh_dir / n, committed_dir / n)]
    if stale:
        print("generated code is stale, run `make protos`:", ", ".join(stale), file=sys.stderr)
        return 1
    print(f"protos: {len(names)} generated files up to date")
    return 0


def _same(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    if parser.parse_args().check:
        return check()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        target = ROOT / PACKAGE_DIR
        for old in _generated_files(target):
            (target / old).unlink()
        for new in (Path(tmp) / PACKAGE_DIR).iterdir():
            shutil.copy2(new, target / new.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
