"""A test double of a Qdrant server: Qdrant's gRPC protocol over qdrant-client's
local engine.

Why: no Qdrant server can be had on the development machine or in CI (no
Docker, no binary), yet the ``qdrant`` store backend (server/store/qdrant.py)
talks to one over gRPC (qdrant-client with ``prefer_grpc=True``). This shim
lets the tests run that remote code path for real, on loopback: requests and
answers are Qdrant's own protobuf messages on the wire (the stubs qdrant-client
ships in ``qdrant_client.grpc``), and each request is carried out by
qdrant-client's local engine (``QdrantLocal``) on a directory, so the data
outlives a restart (or a ``kill -9``) of the shim process.

What it implements: only what the backend calls.

- ``qdrant.Qdrant``: HealthCheck.
- ``qdrant.Collections``: List, Create, Delete, CollectionExists.
- ``qdrant.Points``: Upsert, Get, Scroll, Count, Query, Facet, Delete,
  SetPayload, CreateFieldIndex.

Every other method answers UNIMPLEMENTED (the generated servicers' default).
Errors answer as a Qdrant server does: a request on a collection that does not
exist is NOT_FOUND ("Not found: Collection `x` doesn't exist!"), input the
engine rejects (an existing collection, a vector of the wrong dimension, a bad
name) is INVALID_ARGUMENT ("Wrong input: ..."), anything else INTERNAL.

What it is not: the local engine ignores sharding, replication, write
consistency, HNSW and quantization settings (accepted and dropped), keeps no
payload indexes (CreateFieldIndex succeeds; facets work without an index, where
a real server needs one), searches exactly, and runs one request at a time.
Writes are done when they are answered (``wait`` is implied) and committed
without fsync (they survive a crash of the shim, not of the machine). Only
plaintext gRPC, no API key, loopback only.

Run: ``python -m tests.qdrant_grpc_shim --port N --path DIR`` (from the
repository root); it binds 127.0.0.1:N, logs to stderr and exits 0 on SIGTERM
or SIGINT. Tests drive it through :class:`ShimProcess`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import grpc
from google.protobuf.message import Message
from qdrant_client import grpc as qgrpc
from qdrant_client.conversions.conversion import (
    GrpcToRest,
    RestToGrpc,
    grpc_field_type_to_payload_schema,
)
from qdrant_client.http import models as rest
from qdrant_client.local.persistence import CollectionPersistence
from qdrant_client.local.qdrant_local import QdrantLocal

log = logging.getLogger("qdrant-grpc-shim")

#: An answer message (every one has a ``time`` field).
M = TypeVar("M", bound=Message)

#: What HealthCheck answers (a server gives its own version; this is the
#: version of the qdrant-client whose protocol and engine the shim uses).
TITLE = "qdrant - vector search engine (likeness test shim over qdrant-client local mode)"
VERSION = importlib.metadata.version("qdrant-client")

ROOT = Path(__file__).resolve().parent.parent


class Engine:
    """qdrant-client's local engine on ``path``, one request at a time, with
    its errors answered as the gRPC status codes of a Qdrant server."""

    def __init__(self, path: Path) -> None:
        self.local = QdrantLocal(str(path))
        self._lock = threading.Lock()
        self._tuned: weakref.WeakSet[CollectionPersistence] = weakref.WeakSet()
        self._tune()

    def _tune(self) -> None:
        """No fsync per point: the local engine commits each point to its
        collection's SQLite file, and with fsync 300 points take seconds. A
        commit still reaches the OS before the call is answered, so it
        survives a crash (or ``kill -9``) of the shim, not a power cut."""
        for collection in self.local.collections.values():
            storage = collection.storage
            if storage is not None and storage not in self._tuned:
                storage.storage.execute("PRAGMA synchronous = OFF")
                self._tuned.add(storage)

    def run(
        self, context: grpc.ServicerContext, collection: str | None, work: Callable[[], M]
    ) -> M:
        """The answer ``work()`` builds (under the lock, its ``time`` set);
        NOT_FOUND first when ``collection`` is given and does not exist."""
        started = time.monotonic()
        with self._lock:
            if collection is not None and not self.local.collection_exists(collection):
                _abort(
                    context,
                    grpc.StatusCode.NOT_FOUND,
                    f"Not found: Collection `{collection}` doesn't exist!",
                )
            try:
                answer = work()
                self._tune()  # a new collection
            except ValueError as exc:  # pydantic's ValidationError included
                text = str(exc)
                if not text.startswith("Wrong input"):
                    text = f"Wrong input: {text}"
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, text)
            except Exception as exc:
                log.exception("the local engine failed")
                _abort(context, grpc.StatusCode.INTERNAL, f"Service internal error: {exc}")
        answer.time = time.monotonic() - started  # type: ignore[attr-defined]
        return answer

    def close(self) -> None:
        with self._lock:
            self.local.close()


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    log.info("answering %s: %s", code.name, details)
    context.abort(code, details)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


# -- request fields (gRPC) to the local engine's arguments (REST models) --------


def _optional(msg: Any, field: str, convert: Callable[[Any], Any]) -> Any:
    """``convert(msg.field)`` when the field is set, else None."""
    return convert(getattr(msg, field)) if msg.HasField(field) else None


def _filter(msg: Any, field: str = "filter") -> rest.Filter | None:
    return _optional(msg, field, GrpcToRest.convert_filter)  # type: ignore[no-any-return]


def _with_payload(msg: Any, default: bool) -> rest.WithPayloadInterface:
    if msg.HasField("with_payload"):
        return GrpcToRest.convert_with_payload_selector(msg.with_payload)
    return default


def _with_vectors(msg: Any) -> rest.WithVector:
    if msg.HasField("with_vectors"):
        return GrpcToRest.convert_with_vectors_selector(msg.with_vectors)
    return False


def _limit(msg: Any, default: int = 10) -> int:
    return int(msg.limit) if msg.HasField("limit") else default


# -- the local engine's answers (REST models) to gRPC --------------------------


def _record(record: rest.Record) -> qgrpc.RetrievedPoint:
    # A record read without its payload has payload None: an empty map on the wire.
    if record.payload is None:
        record = record.model_copy(update={"payload": {}})
    return RestToGrpc.convert_record(record)


def _updated(result: rest.UpdateResult) -> qgrpc.PointsOperationResponse:
    return qgrpc.PointsOperationResponse(result=RestToGrpc.convert_update_result(result))


# -- services ------------------------------------------------------------------


class QdrantService(qgrpc.QdrantServicer):
    """``qdrant.Qdrant``: HealthCheck."""

    def HealthCheck(  # noqa: N802
        self, request: qgrpc.HealthCheckRequest, context: grpc.ServicerContext
    ) -> qgrpc.HealthCheckReply:
        return qgrpc.HealthCheckReply(title=TITLE, version=VERSION)


class CollectionsService(qgrpc.CollectionsServicer):
    """``qdrant.Collections``: List, Create, Delete, CollectionExists."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = engine.local

    def List(  # noqa: N802
        self, request: qgrpc.ListCollectionsRequest, context: grpc.ServicerContext
    ) -> qgrpc.ListCollectionsResponse:
        def work() -> qgrpc.ListCollectionsResponse:
            found = self._local.get_collections().collections
            return qgrpc.ListCollectionsResponse(
                collections=[RestToGrpc.convert_collection_description(c) for c in found]
            )

        return self._engine.run(context, None, work)

    def Create(  # noqa: N802
        self, request: qgrpc.CreateCollection, context: grpc.ServicerContext
    ) -> qgrpc.CollectionOperationResponse:
        def work() -> qgrpc.CollectionOperationResponse:
            # Sharding, replication, write consistency, HNSW, WAL, optimizer
            # and quantization settings mean nothing to the local engine:
            # accepted and dropped. An existing name is a ValueError, answered
            # INVALID_ARGUMENT as a server does ("... already exists!").
            created = self._local.create_collection(
                request.collection_name,
                vectors_config=_optional(
                    request, "vectors_config", GrpcToRest.convert_vectors_config
                ),
                sparse_vectors_config=_optional(
                    request, "sparse_vectors_config", GrpcToRest.convert_sparse_vector_config
                ),
                metadata=GrpcToRest.convert_payload(request.metadata) if request.metadata else None,
            )
            return qgrpc.CollectionOperationResponse(result=created)

        return self._engine.run(context, None, work)

    def Delete(  # noqa: N802
        self, request: qgrpc.DeleteCollection, context: grpc.ServicerContext
    ) -> qgrpc.CollectionOperationResponse:
        # As on a server, deleting a collection that does not exist answers false.
        def work() -> qgrpc.CollectionOperationResponse:
            deleted = self._local.delete_collection(request.collection_name)
            return qgrpc.CollectionOperationResponse(result=deleted)

        return self._engine.run(context, None, work)

    def CollectionExists(  # noqa: N802
        self, request: qgrpc.CollectionExistsRequest, context: grpc.ServicerContext
    ) -> qgrpc.CollectionExistsResponse:
        def work() -> qgrpc.CollectionExistsResponse:
            exists = self._local.collection_exists(request.collection_name)
            return qgrpc.CollectionExistsResponse(result=qgrpc.CollectionExists(exists=exists))

        return self._engine.run(context, None, work)


class PointsService(qgrpc.PointsServicer):
    """``qdrant.Points``: Upsert, Get, Scroll, Count, Query, Facet, Delete,
    SetPayload, CreateFieldIndex. Read consistency, shard keys, ordering and
    timeouts are ignored; writes are complete when answered."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = engine.local

    def Upsert(  # noqa: N802
        self, request: qgrpc.UpsertPoints, context: grpc.ServicerContext
    ) -> qgrpc.PointsOperationResponse:
        def work() -> qgrpc.PointsOperationResponse:
            return _updated(
                self._local.upsert(
                    request.collection_name,
                    [GrpcToRest.convert_point_struct(p) for p in request.points],
                    update_filter=_filter(request, "update_filter"),
                    update_mode=_optional(request, "update_mode", GrpcToRest.convert_update_mode),
                )
            )

        return self._engine.run(context, request.collection_name, work)

    def Get(  # noqa: N802
        self, request: qgrpc.GetPoints, context: grpc.ServicerContext
    ) -> qgrpc.GetResponse:
        def work() -> qgrpc.GetResponse:
            records = self._local.retrieve(
                request.collection_name,
                [GrpcToRest.convert_point_id(i) for i in request.ids],
                with_payload=_with_payload(request, True),
                with_vectors=_with_vectors(request),
            )
            return qgrpc.GetResponse(result=[_record(r) for r in records])

        return self._engine.run(context, request.collection_name, work)

    def Scroll(  # noqa: N802
        self, request: qgrpc.ScrollPoints, context: grpc.ServicerContext
    ) -> qgrpc.ScrollResponse:
        def work() -> qgrpc.ScrollResponse:
            records, next_offset = self._local.scroll(
                request.collection_name,
                scroll_filter=_filter(request),
                limit=_limit(request),
                order_by=_optional(request, "order_by", GrpcToRest.convert_order_by),
                offset=_optional(request, "offset", GrpcToRest.convert_point_id),
                with_payload=_with_payload(request, True),
                with_vectors=_with_vectors(request),
            )
            return qgrpc.ScrollResponse(
                result=[_record(r) for r in records],
                next_page_offset=(
                    None
                    if next_offset is None
                    else RestToGrpc.convert_extended_point_id(
                        cast(rest.ExtendedPointId, next_offset)
                    )
                ),
            )

        return self._engine.run(context, request.collection_name, work)

    def Count(  # noqa: N802
        self, request: qgrpc.CountPoints, context: grpc.ServicerContext
    ) -> qgrpc.CountResponse:
        # Local counts are always exact.
        def work() -> qgrpc.CountResponse:
            counted = self._local.count(request.collection_name, count_filter=_filter(request))
            return qgrpc.CountResponse(result=RestToGrpc.convert_count_result(counted))

        return self._engine.run(context, request.collection_name, work)

    def Query(  # noqa: N802
        self, request: qgrpc.QueryPoints, context: grpc.ServicerContext
    ) -> qgrpc.QueryResponse:
        def work() -> qgrpc.QueryResponse:
            found = self._local.query_points(
                request.collection_name,
                query=_optional(request, "query", GrpcToRest.convert_query),
                using=request.using if request.HasField("using") else None,
                prefetch=[GrpcToRest.convert_prefetch_query(p) for p in request.prefetch] or None,
                query_filter=_filter(request),
                search_params=_optional(request, "params", GrpcToRest.convert_search_params),
                limit=_limit(request),
                offset=request.offset if request.HasField("offset") else None,
                with_payload=_with_payload(request, False),
                with_vectors=_with_vectors(request),
                score_threshold=(
                    request.score_threshold if request.HasField("score_threshold") else None
                ),
                lookup_from=_optional(request, "lookup_from", GrpcToRest.convert_lookup_location),
            )
            return qgrpc.QueryResponse(
                result=[RestToGrpc.convert_scored_point(p) for p in found.points]
            )

        return self._engine.run(context, request.collection_name, work)

    def Facet(  # noqa: N802
        self, request: qgrpc.FacetCounts, context: grpc.ServicerContext
    ) -> qgrpc.FacetResponse:
        # A server needs a keyword (or integer, uuid) index on the key; the
        # local engine counts without one.
        def work() -> qgrpc.FacetResponse:
            found = self._local.facet(
                request.collection_name,
                key=request.key,
                facet_filter=_filter(request),
                limit=_limit(request),
            )
            return qgrpc.FacetResponse(
                hits=[RestToGrpc.convert_facet_value_hit(h) for h in found.hits]
            )

        return self._engine.run(context, request.collection_name, work)

    def Delete(  # noqa: N802
        self, request: qgrpc.DeletePoints, context: grpc.ServicerContext
    ) -> qgrpc.PointsOperationResponse:
        def work() -> qgrpc.PointsOperationResponse:
            selector = GrpcToRest.convert_points_selector(request.points)
            return _updated(self._local.delete(request.collection_name, selector))

        return self._engine.run(context, request.collection_name, work)

    def SetPayload(  # noqa: N802
        self, request: qgrpc.SetPayloadPoints, context: grpc.ServicerContext
    ) -> qgrpc.PointsOperationResponse:
        def work() -> qgrpc.PointsOperationResponse:
            return _updated(
                self._local.set_payload(
                    request.collection_name,
                    payload=GrpcToRest.convert_payload(request.payload),
                    points=GrpcToRest.convert_points_selector(request.points_selector),
                    key=request.key if request.HasField("key") else None,
                )
            )

        return self._engine.run(context, request.collection_name, work)

    def CreateFieldIndex(  # noqa: N802
        self, request: qgrpc.CreateFieldIndexCollection, context: grpc.ServicerContext
    ) -> qgrpc.PointsOperationResponse:
        # Recorded and otherwise ignored by the local engine (it indexes text
        # fields with scoring only).
        def work() -> qgrpc.PointsOperationResponse:
            schema: Any = None
            if request.HasField("field_index_params"):
                schema = GrpcToRest.convert_payload_schema_params(request.field_index_params)
            elif request.HasField("field_type"):
                schema = GrpcToRest.convert_payload_schema_type(
                    grpc_field_type_to_payload_schema(request.field_type)  # type: ignore[arg-type]
                )
            return _updated(
                self._local.create_payload_index(
                    request.collection_name, request.field_name, field_schema=schema
                )
            )

        return self._engine.run(context, request.collection_name, work)


def serve(port: int, path: Path) -> tuple[grpc.Server, Engine]:
    """Start the shim on 127.0.0.1:``port`` over the engine at ``path``."""
    engine = Engine(path)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="qdrant-shim"),
        # Fail when the port is taken instead of sharing it.
        options=[("grpc.so_reuseport", 0)],
    )
    qgrpc.add_QdrantServicer_to_server(QdrantService(), server)  # type: ignore[no-untyped-call]
    qgrpc.add_CollectionsServicer_to_server(CollectionsService(engine), server)  # type: ignore[no-untyped-call]
    qgrpc.add_PointsServicer_to_server(PointsService(engine), server)  # type: ignore[no-untyped-call]
    try:
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
    except RuntimeError:  # newer grpcio raises where older ones answered 0
        bound = 0
    if bound == 0:
        engine.close()
        raise OSError(f"cannot bind 127.0.0.1:{port}")
    server.start()
    return server, engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Test double: Qdrant's gRPC protocol over qdrant-client's local engine."
    )
    parser.add_argument("--port", type=int, required=True, help="loopback port to bind")
    parser.add_argument("--path", type=Path, required=True, help="data directory")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s qdrant-shim %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server, engine = serve(args.port, args.path)
    except (OSError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info("serving on 127.0.0.1:%d, data in %s", args.port, args.path)
    while not stop.wait(0.5):
        pass
    log.info("stopping")
    server.stop(1).wait()
    engine.close()
    return 0


# -- for the tests -------------------------------------------------------------


class ShimProcess:
    """The shim as a subprocess on 127.0.0.1:``port`` over ``path``:
    :meth:`start` (waits until it answers HealthCheck), :meth:`kill`
    (SIGKILL), :meth:`stop` (SIGTERM). Its stderr goes to ``log_path``."""

    def __init__(self, port: int, path: Path, log_path: Path) -> None:
        self.port = port
        self.path = path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.qdrant_grpc_shim",
                    "--port",
                    str(self.port),
                    "--path",
                    str(self.path),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        deadline = time.monotonic() + timeout_s
        # Retry the connection every 0.1 s while the process starts up.
        options = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 100),
        ]
        with grpc.insecure_channel(f"127.0.0.1:{self.port}", options) as channel:
            stub = qgrpc.QdrantStub(channel)  # type: ignore[no-untyped-call]
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the qdrant shim exited: {self._log_tail()}")
                try:
                    stub.HealthCheck(qgrpc.HealthCheckRequest(), timeout=1)
                    return
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise RuntimeError(
                            f"the qdrant shim did not answer in {timeout_s} s: {self._log_tail()}"
                        ) from None
                    time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; the exit status (None when not started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""


@contextlib.contextmanager
def running_shim(port: int, path: Path, log_path: Path) -> Iterator[ShimProcess]:
    """A started :class:`ShimProcess`, stopped on exit (even on failure)."""
    shim = ShimProcess(port, path, log_path)
    try:
        shim.start()
        yield shim
    finally:
        shim.stop()


if __name__ == "__main__":
    sys.exit(main())
