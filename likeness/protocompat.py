"""Wire and API compatibility of ``proto/likeness/v1`` with a released snapshot.

``python -m likeness.protocompat check [SNAPSHOT]`` compiles the current
.proto files and lists every breaking change against the snapshot (the
FileDescriptorSet of the last release, ``proto/releases/``), one per line,
exiting 1 when there is any. ``python -m likeness.protocompat snapshot
OUT`` writes the current FileDescriptorSet (done once per release).

Breaking: a removed message, enum, enum value, service or method; a field
removed, renumbered, renamed (JSON and text formats use the name), or
changed in type, message or enum type, cardinality (repeated, optional) or
oneof; a method's request or response type or streaming changed.
Additions (messages, fields, enum values, services, methods) pass.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from likeness.protogen import PROTO_ROOT

#: The snapshot of the last released API (likeness 0.1.0).
RELEASED = PROTO_ROOT / "releases" / "likeness-v1-0.1.0.binpb"


def descriptor_set(proto_root: Path = PROTO_ROOT) -> descriptor_pb2.FileDescriptorSet:
    """The FileDescriptorSet of ``proto_root/likeness/v1/*.proto`` (protoc in
    this process: call it in a process without TensorFlow)."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    files = sorted((proto_root / "likeness" / "v1").glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        args = [
            "protoc",
            f"-I{proto_root}",
            f"-I{include}",
            f"--descriptor_set_out={out}",
            *[str(p.relative_to(proto_root)) for p in files],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _messages(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(prefix: str, message: Any) -> None:
        name = f"{prefix}.{message.name}"
        found[name] = message
        for nested in message.nested_type:
            walk(name, nested)

    for file in fds.file:
        for message in file.message_type:
            walk(file.package, message)
    return found


def _enums(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for file in fds.file:
        for enum in file.enum_type:
            found[f"{file.package}.{enum.name}"] = enum
        for name, message in _messages(descriptor_pb2.FileDescriptorSet(file=[file])).items():
            for enum in message.enum_type:
                found[f"{name}.{enum.name}"] = enum
    return found


def _services(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    return {f"{f.package}.{s.name}": s for f in fds.file for s in f.service}


def _label(field: Any) -> str:
    if field.proto3_optional:
        return "optional"
    return descriptor_pb2.FieldDescriptorProto.Label.Name(field.label)


def _kind(field: Any) -> str:
    kind = descriptor_pb2.FieldDescriptorProto.Type.Name(field.type)
    return f"{kind} {field.type_name}" if field.type_name else kind


def _oneof(message: Any, field: Any) -> str:
    if not field.HasField("oneof_index") or field.proto3_optional:
        return ""
    return str(message.oneof_decl[field.oneof_index].name)


def _field_changes(name: str, old: Any, new: Any) -> Iterator[str]:
    new_by_number = {f.number: f for f in new.field}
    new_by_name = {f.name: f for f in new.field}
    for field in old.field:
        path = f"{name}.{field.name}"
        now = new_by_number.get(field.number)
        if now is None:
            moved = new_by_name.get(field.name)
            if moved is not None:
                yield (
                    f"{path}: field number changed from {field.number} to {moved.number} "
                    "(old readers see the field as missing)"
                )
            else:
                yield f"{path}: field {field.number} removed"
            continue
        if now.name != field.name:
            yield f"{path}: field {field.number} renamed to {now.name}"
        if _kind(now) != _kind(field):
            yield f"{path}: type changed from {_kind(field)} to {_kind(now)}"
        if _label(now) != _label(field):
            yield f"{path}: cardinality changed from {_label(field)} to {_label(now)}"
        if _oneof(new, now) != _oneof(old, field):
            yield f"{path}: oneof changed from {_oneof(old, field)!r} to {_oneof(new, now)!r}"


def breaking_changes(
    old: descriptor_pb2.FileDescriptorSet, new: descriptor_pb2.FileDescriptorSet
) -> list[str]:
    """Every breaking change from ``old`` to ``new``, one sentence each."""
    changes: list[str] = []
    new_messages = _messages(new)
    for name, message in _messages(old).items():
        if name not in new_messages:
            changes.append(f"message {name} removed")
        else:
            changes.extend(_field_changes(name, message, new_messages[name]))
    new_enums = _enums(new)
    for name, enum in _enums(old).items():
        if name not in new_enums:
            changes.append(f"enum {name} removed")
            continue
        numbers = {v.name: v.number for v in new_enums[name].value}
        for value in enum.value:
            if value.name not in numbers:
                changes.append(f"enum value {name}.{value.name} removed")
            elif numbers[value.name] != value.number:
                changes.append(
                    f"enum value {name}.{value.name}: number changed from {value.number} "
                    f"to {numbers[value.name]}"
                )
    new_services = _services(new)
    for name, service in _services(old).items():
        if name not in new_services:
            changes.append(f"service {name} removed")
            continue
        methods = {m.name: m for m in new_services[name].method}
        for method in service.method:
            path = f"{name}.{method.name}"
            now = methods.get(method.name)
            if now is None:
                changes.append(f"rpc {path} removed")
                continue
            for what in ("input_type", "output_type", "client_streaming", "server_streaming"):
                before, after = getattr(method, what), getattr(now, what)
                if before != after:
                    changes.append(f"rpc {path}: {what} changed from {before} to {after}")
    return changes


def main(argv: list[str] | None = None) -> int:
    """``check [SNAPSHOT] [--proto-root DIR]`` or ``snapshot OUT``."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = PROTO_ROOT
    if "--proto-root" in args:
        at = args.index("--proto-root")
        root = Path(args[at + 1])
        del args[at : at + 2]
    if args[:1] == ["snapshot"] and len(args) == 2:
        Path(args[1]).write_bytes(descriptor_set(root).SerializeToString(deterministic=True))
        return 0
    if args[:1] == ["check"] and len(args) <= 2:
        snapshot = Path(args[1]) if len(args) == 2 else RELEASED
        old = descriptor_pb2.FileDescriptorSet.FromString(snapshot.read_bytes())
        changes = breaking_changes(old, descriptor_set(root))
        for change in changes:
            sys.stderr.write(f"breaking change: {change}\n")
        return 1 if changes else 0
    sys.stderr.write("usage: python -m likeness.protocompat check [SNAPSHOT] | snapshot OUT\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
