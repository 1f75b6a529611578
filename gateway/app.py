"""The gateway's routes: one resource-oriented route per RPC.

Images are multipart uploads (``curl -F image=@face.jpg``); everything else
is JSON. ``Authorization: Bearer <key>`` is forwarded to the registry as the
same API key (no header: no key). Export and import (streams) stay gRPC-only.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import grpc
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

import likeness
from gateway.errors import (
    GatewayError,
    on_gateway_error,
    on_invalid_request,
    on_rpc_error,
)
from gateway.settings import GatewaySettings
from likeness.aio import AsyncLikenessClient
from likeness.client import (
    ApiKey,
    CompareResult,
    CreatedApiKey,
    EmbedResult,
    EnrollResult,
    Gallery,
    GalleryStats,
    IdentifyResult,
    LikenessRpcError,
    ModelInfo,
    Subject,
    SubjectPage,
    VerifyResult,
)
from likeness.selection import FaceSelection

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text}
    for status, text in {
        400: "Invalid argument or failed precondition (error body with code and reason)",
        401: "Missing, malformed or unknown API key",
        403: "The key lacks the role for this gallery",
        404: "Unknown gallery, subject or face, or no face in the image",
        503: "Registry, store or embedder unreachable; retry later",
    }.items()
}


class NewGallery(BaseModel):
    """A gallery to create; unset gates keep the server's defaults."""

    name: str
    threshold: float | None = Field(
        None, description='Cosine similarity for a match, set by hand (operating point "custom").'
    )
    operating_point: str = Field(
        "", description='One of the model\'s operating points, e.g. "far-1e-4"; "" = its default.'
    )
    min_face_size_px: float | None = Field(None, description="Inter-ocular pixels; 0 = off.")
    min_sharpness: float | None = Field(None, description="Laplacian variance; 0 = off.")
    max_abs_yaw_deg: float | None = Field(None, description="Degrees; 0 = off.")


class GalleryUpdate(BaseModel):
    """A gallery's new operating point, by name (e.g. "far-1e-4")."""

    operating_point: str


class NewApiKey(BaseModel):
    """A key to create: ``scopes`` maps a gallery (or "*") to read | enroll | admin."""

    name: str
    scopes: dict[str, str]


def _client(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> AsyncLikenessClient:
    """The app's client, sending the request's bearer key (none without a header)."""
    key: str | None = None
    if authorization is not None:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise GatewayError(
                grpc.StatusCode.UNAUTHENTICATED, "Authorization must be 'Bearer <API key>'"
            )
        key = key.strip()
    shared: AsyncLikenessClient = request.app.state.client
    return shared.with_api_key(key)


Client = Annotated[AsyncLikenessClient, Depends(_client)]


class Deleted(BaseModel):
    faces_deleted: int


class DeletedFace(BaseModel):
    subject_id: str


def create_app(settings: GatewaySettings) -> FastAPI:
    """The ASGI app; its gRPC client opens with the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = AsyncLikenessClient(
            settings.registry_address, settings.embedder_address, timeout_s=settings.timeout_s
        )
        app.state.client = client
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(
        title="Likeness HTTP API",
        version=likeness.__version__,
        description="Face verification and identification: the Registry, Admin and Embedder "
        "gRPC services (likeness.v1) over HTTP/JSON. Authenticate with "
        "`Authorization: Bearer <API key>`; errors answer "
        '`{"error": {"code", "reason", "message"}}` with the HTTP status of the gRPC code.',
        lifespan=lifespan,
        responses=_ERRORS,
    )
    app.add_exception_handler(LikenessRpcError, on_rpc_error)
    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)

    async def read(upload: UploadFile) -> bytes:
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise GatewayError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{upload.filename or 'upload'}: larger than {settings.max_upload_bytes} bytes",
            )
        return data

    # -- Decisions -------------------------------------------------------

    @app.post("/v1/galleries/{gallery}/subjects/{subject_id}/faces", tags=["faces"])
    async def enroll(
        gallery: str,
        subject_id: str,
        c: Client,
        images: Annotated[list[UploadFile], File(description="One face per image.")],
        metadata: Annotated[str, Form(description="JSON object of strings; replaces.")] = "{}",
        idempotency_key: Annotated[str | None, Form()] = None,
    ) -> EnrollResult:
        """Enroll: add faces to a subject, creating it on its first face."""
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise GatewayError(
                grpc.StatusCode.INVALID_ARGUMENT, "metadata must be a JSON object of strings"
            )
        data = [await read(i) for i in images]
        return await c.enroll(
            subject_id, data, metadata=meta, idempotency_key=idempotency_key, gallery=gallery
        )

    @app.post("/v1/galleries/{gallery}/subjects/{subject_id}/verify", tags=["decisions"])
    async def verify(
        gallery: str, subject_id: str, c: Client, image: Annotated[UploadFile, File()]
    ) -> VerifyResult:
        """Verify (1:1): is the face in ``image`` this subject?"""
        return await c.verify(subject_id, await read(image), gallery=gallery)

    @app.post("/v1/galleries/{gallery}/identify", tags=["decisions"])
    async def identify(
        gallery: str,
        c: Client,
        image: Annotated[UploadFile, File()],
        top_k: Annotated[int, Form(ge=1, le=100)] = 5,
        min_score: Annotated[float | None, Form()] = None,
    ) -> IdentifyResult:
        """Identify (1:N, open set): the subjects most like the face in ``image``."""
        return await c.identify(
            await read(image), top_k=top_k, min_score=min_score, gallery=gallery
        )

    @app.post("/v1/compare", tags=["decisions"])
    async def compare(
        c: Client,
        a: Annotated[UploadFile, File()],
        b: Annotated[UploadFile, File()],
        gallery: Annotated[str, Form()] = "",
    ) -> CompareResult:
        """Compare two images, storing nothing."""
        return await c.compare(await read(a), await read(b), gallery=gallery)

    # -- Subjects and faces ----------------------------------------------

    @app.get("/v1/galleries/{gallery}/subjects", tags=["subjects"])
    async def list_subjects(
        gallery: str,
        c: Client,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
        page_token: str = "",
    ) -> SubjectPage:
        """ListSubjects: one page of subjects ordered by id."""
        return await c.list_subjects(gallery=gallery, page_size=page_size, page_token=page_token)

    @app.get("/v1/galleries/{gallery}/subjects/{subject_id}", tags=["subjects"])
    async def get_subject(gallery: str, subject_id: str, c: Client) -> Subject:
        """GetSubject: a subject with its faces and metadata."""
        return await c.get_subject(subject_id, gallery=gallery)

    @app.delete("/v1/galleries/{gallery}/subjects/{subject_id}", tags=["subjects"])
    async def delete_subject(gallery: str, subject_id: str, c: Client) -> Deleted:
        """DeleteSubject: remove a subject and all its faces."""
        return Deleted(faces_deleted=await c.delete_subject(subject_id, gallery=gallery))

    @app.delete("/v1/galleries/{gallery}/faces/{face_id}", tags=["subjects"])
    async def delete_face(gallery: str, face_id: str, c: Client) -> DeletedFace:
        """DeleteFace: remove one face."""
        return DeletedFace(subject_id=await c.delete_face(face_id, gallery=gallery))

    # -- Galleries -------------------------------------------------------

    @app.get("/v1/galleries", tags=["galleries"])
    async def list_galleries(c: Client) -> list[Gallery]:
        """ListGalleries: every gallery the key may read."""
        return await c.list_galleries()

    @app.post("/v1/galleries", status_code=201, tags=["galleries"])
    async def create_gallery(body: NewGallery, c: Client) -> Gallery:
        """CreateGallery, bound to the embedder's model."""
        return await c.create_gallery(
            body.name,
            threshold=body.threshold,
            min_face_size_px=body.min_face_size_px,
            min_sharpness=body.min_sharpness,
            max_abs_yaw_deg=body.max_abs_yaw_deg,
            operating_point=body.operating_point,
        )

    @app.patch("/v1/galleries/{gallery}", tags=["galleries"])
    async def update_gallery(gallery: str, body: GalleryUpdate, c: Client) -> Gallery:
        """UpdateGallery: move the gallery to another of its model's operating points."""
        return await c.update_gallery(gallery, operating_point=body.operating_point)

    @app.get("/v1/galleries/{gallery}", tags=["galleries"])
    async def stats(gallery: str, c: Client) -> GalleryStats:
        """Stats: a gallery's configuration and its subject and face counts."""
        return await c.stats(gallery=gallery)

    @app.delete("/v1/galleries/{gallery}", tags=["galleries"])
    async def delete_gallery(gallery: str, c: Client) -> Deleted:
        """DeleteGallery with every subject and face."""
        return Deleted(faces_deleted=await c.delete_gallery(gallery))

    # -- API keys (Admin) --------------------------------------------------

    @app.post("/v1/api-keys", status_code=201, tags=["api keys"])
    async def create_api_key(body: NewApiKey, c: Client) -> CreatedApiKey:
        """CreateApiKey; the secret is shown only in this answer."""
        return await c.create_api_key(body.name, body.scopes)

    @app.get("/v1/api-keys", tags=["api keys"])
    async def list_api_keys(c: Client) -> list[ApiKey]:
        """ListApiKeys, revoked ones included (never their secrets)."""
        return await c.list_api_keys()

    @app.delete("/v1/api-keys/{key_id}", status_code=204, tags=["api keys"])
    async def revoke_api_key(key_id: str, c: Client) -> None:
        """RevokeApiKey: later calls with the key answer 401."""
        await c.revoke_api_key(key_id)

    # -- Embedder ----------------------------------------------------------

    @app.post("/v1/embed", tags=["embedder"])
    async def embed(
        c: Client, image: Annotated[UploadFile, File()], all_faces: Annotated[bool, Form()] = False
    ) -> EmbedResult:
        """Embed: detect, align, score and embed the largest (or every) face."""
        selection = FaceSelection.ALL if all_faces else FaceSelection.LARGEST
        return await c.embed(await read(image), selection)

    @app.get("/v1/info", tags=["embedder"])
    async def info(c: Client) -> ModelInfo:
        """Info: the embedder's model."""
        return await c.info()

    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the gateway (independent of settings)."""
    return create_app(GatewaySettings()).openapi()
