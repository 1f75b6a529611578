"""Generates the gRPC stubs of ``proto/likeness/v1`` into ``likeness/v1``.

Run with ``make proto`` (or ``python -m likeness.protogen``). The output
uses absolute imports (``from likeness.v1 import common_pb2``) because the
protos import each other by their path under ``proto/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def proto_files() -> list[Path]:
    """The API's .proto files, sorted."""
    return sorted((PROTO_ROOT / "likeness" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> None:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` under ``out_dir/likeness/v1``."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    (out_dir / "likeness" / "v1").mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    init = out_dir / "likeness" / "v1" / "__init__.py"
    init.write_text('"""Generated gRPC stubs of the Likeness API (do not edit; `make proto`)."""\n')


def main(argv: list[str] | None = None) -> int:
    """``python -m likeness.protogen [OUT_DIR]`` (default: the repository root)."""
    args = sys.argv[1:] if argv is None else argv
    generate(Path(args[0]) if args else ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
