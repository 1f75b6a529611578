from likeness.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("gallery", "subject_id", "images", "embeddings", "metadata", "idempotency_key", "selection")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    subject_id: str
    images: _containers.RepeatedScalarFieldContainer[bytes]
    embeddings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Embedding]
    metadata: _containers.ScalarMap[str, str]
    idempotency_key: str
    selection: _common_pb2.FaceSelection
    def __init__(self, gallery: _Optional[str] = ..., subject_id: _Optional[str] = ..., images: _Optional[_Iterable[bytes]] = ..., embeddings: _Optional[_Iterable[_Union[_common_pb2.Embedding, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., selection: _Optional[_Union[_common_pb2.FaceSelection, str]] = ...) -> None: ...

class EnrolledFace(_message.Message):
    __slots__ = ("face_id", "quality")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    quality: _common_pb2.Quality
    def __init__(self, face_id: _Optional[str] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...

class DuplicateCandidate(_message.Message):
    __slots__ = ("subject_id", "score")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    score: float
    def __init__(self, subject_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("subject_id", "faces", "possible_duplicates", "replayed")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    POSSIBLE_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    faces: _containers.RepeatedCompositeFieldContainer[EnrolledFace]
    possible_duplicates: _containers.RepeatedCompositeFieldContainer[DuplicateCandidate]
    replayed: bool
    def __init__(self, subject_id: _Optional[str] = ..., faces: _Optional[_Iterable[_Union[EnrolledFace, _Mapping]]] = ..., possible_duplicates: _Optional[_Iterable[_Union[DuplicateCandidate, _Mapping]]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("gallery", "subject_id", "probe")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    subject_id: str
    probe: _common_pb2.Probe
    def __init__(self, gallery: _Optional[str] = ..., subject_id: _Optional[str] = ..., probe: _Optional[_Union[_common_pb2.Probe, _Mapping]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("score", "threshold", "match", "face_id", "probe_quality", "operating_point")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_QUALITY_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINT_FIELD_NUMBER: _ClassVar[int]
    score: float
    threshold: float
    match: bool
    face_id: str
    probe_quality: _common_pb2.Quality
    operating_point: _common_pb2.OperatingPoint
    def __init__(self, score: _Optional[float] = ..., threshold: _Optional[float] = ..., match: _Optional[bool] = ..., face_id: _Optional[str] = ..., probe_quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., operating_point: _Optional[_Union[_common_pb2.OperatingPoint, _Mapping]] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("gallery", "probe", "top_k", "min_score", "selection")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    probe: _common_pb2.Probe
    top_k: int
    min_score: float
    selection: _common_pb2.FaceSelection
    def __init__(self, gallery: _Optional[str] = ..., probe: _Optional[_Union[_common_pb2.Probe, _Mapping]] = ..., top_k: _Optional[int] = ..., min_score: _Optional[float] = ..., selection: _Optional[_Union[_common_pb2.FaceSelection, str]] = ...) -> None: ...

class IdentifiedFace(_message.Message):
    __slots__ = ("box", "quality", "candidates", "unknown")
    BOX_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.BoundingBox
    quality: _common_pb2.Quality
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    unknown: bool
    def __init__(self, box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., unknown: _Optional[bool] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("subject_id", "score", "face_id", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    score: float
    face_id: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, subject_id: _Optional[str] = ..., score: _Optional[float] = ..., face_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("candidates", "unknown", "threshold", "probe_quality", "faces", "operating_point")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PROBE_QUALITY_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINT_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    unknown: bool
    threshold: float
    probe_quality: _common_pb2.Quality
    faces: _containers.RepeatedCompositeFieldContainer[IdentifiedFace]
    operating_point: _common_pb2.OperatingPoint
    def __init__(self, candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., unknown: _Optional[bool] = ..., threshold: _Optional[float] = ..., probe_quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., faces: _Optional[_Iterable[_Union[IdentifiedFace, _Mapping]]] = ..., operating_point: _Optional[_Union[_common_pb2.OperatingPoint, _Mapping]] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("a", "b", "gallery")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    a: _common_pb2.Probe
    b: _common_pb2.Probe
    gallery: str
    def __init__(self, a: _Optional[_Union[_common_pb2.Probe, _Mapping]] = ..., b: _Optional[_Union[_common_pb2.Probe, _Mapping]] = ..., gallery: _Optional[str] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("score", "threshold", "match", "quality_a", "quality_b", "operating_point")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    QUALITY_A_FIELD_NUMBER: _ClassVar[int]
    QUALITY_B_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINT_FIELD_NUMBER: _ClassVar[int]
    score: float
    threshold: float
    match: bool
    quality_a: _common_pb2.Quality
    quality_b: _common_pb2.Quality
    operating_point: _common_pb2.OperatingPoint
    def __init__(self, score: _Optional[float] = ..., threshold: _Optional[float] = ..., match: _Optional[bool] = ..., quality_a: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., quality_b: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., operating_point: _Optional[_Union[_common_pb2.OperatingPoint, _Mapping]] = ...) -> None: ...

class FaceRecord(_message.Message):
    __slots__ = ("face_id", "model_fingerprint", "created_at", "quality")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    model_fingerprint: str
    created_at: float
    quality: _common_pb2.Quality
    def __init__(self, face_id: _Optional[str] = ..., model_fingerprint: _Optional[str] = ..., created_at: _Optional[float] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("gallery", "subject_id", "faces", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    subject_id: str
    faces: _containers.RepeatedCompositeFieldContainer[FaceRecord]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, gallery: _Optional[str] = ..., subject_id: _Optional[str] = ..., faces: _Optional[_Iterable[_Union[FaceRecord, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetSubjectRequest(_message.Message):
    __slots__ = ("gallery", "subject_id")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    subject_id: str
    def __init__(self, gallery: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class ListSubjectsRequest(_message.Message):
    __slots__ = ("gallery", "page_size", "page_token")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    page_size: int
    page_token: str
    def __init__(self, gallery: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SubjectSummary(_message.Message):
    __slots__ = ("subject_id", "face_count")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    face_count: int
    def __init__(self, subject_id: _Optional[str] = ..., face_count: _Optional[int] = ...) -> None: ...

class ListSubjectsResponse(_message.Message):
    __slots__ = ("subjects", "next_page_token")
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subjects: _containers.RepeatedCompositeFieldContainer[SubjectSummary]
    next_page_token: str
    def __init__(self, subjects: _Optional[_Iterable[_Union[SubjectSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteSubjectRequest(_message.Message):
    __slots__ = ("gallery", "subject_id")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    subject_id: str
    def __init__(self, gallery: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class DeleteSubjectResponse(_message.Message):
    __slots__ = ("faces_deleted",)
    FACES_DELETED_FIELD_NUMBER: _ClassVar[int]
    faces_deleted: int
    def __init__(self, faces_deleted: _Optional[int] = ...) -> None: ...

class DeleteFaceRequest(_message.Message):
    __slots__ = ("gallery", "face_id")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    face_id: str
    def __init__(self, gallery: _Optional[str] = ..., face_id: _Optional[str] = ...) -> None: ...

class DeleteFaceResponse(_message.Message):
    __slots__ = ("subject_id",)
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    def __init__(self, subject_id: _Optional[str] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("gallery", "count_duplicates")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    COUNT_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    count_duplicates: bool
    def __init__(self, gallery: _Optional[str] = ..., count_duplicates: _Optional[bool] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("gallery", "subjects", "faces", "store_backend", "duplicate_pairs")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    STORE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_PAIRS_FIELD_NUMBER: _ClassVar[int]
    gallery: Gallery
    subjects: int
    faces: int
    store_backend: str
    duplicate_pairs: int
    def __init__(self, gallery: _Optional[_Union[Gallery, _Mapping]] = ..., subjects: _Optional[int] = ..., faces: _Optional[int] = ..., store_backend: _Optional[str] = ..., duplicate_pairs: _Optional[int] = ...) -> None: ...

class Gallery(_message.Message):
    __slots__ = ("name", "model_fingerprint", "dim", "threshold", "min_face_size_px", "min_sharpness", "max_abs_yaw_deg", "created_at", "gate_probes", "operating_point")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_FACE_SIZE_PX_FIELD_NUMBER: _ClassVar[int]
    MIN_SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    GATE_PROBES_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_fingerprint: str
    dim: int
    threshold: float
    min_face_size_px: float
    min_sharpness: float
    max_abs_yaw_deg: float
    created_at: float
    gate_probes: bool
    operating_point: _common_pb2.OperatingPoint
    def __init__(self, name: _Optional[str] = ..., model_fingerprint: _Optional[str] = ..., dim: _Optional[int] = ..., threshold: _Optional[float] = ..., min_face_size_px: _Optional[float] = ..., min_sharpness: _Optional[float] = ..., max_abs_yaw_deg: _Optional[float] = ..., created_at: _Optional[float] = ..., gate_probes: _Optional[bool] = ..., operating_point: _Optional[_Union[_common_pb2.OperatingPoint, _Mapping]] = ...) -> None: ...

class CreateGalleryRequest(_message.Message):
    __slots__ = ("name", "threshold", "min_face_size_px", "min_sharpness", "max_abs_yaw_deg", "shard_number", "replication_factor", "write_consistency_factor", "gate_probes", "operating_point")
    NAME_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_FACE_SIZE_PX_FIELD_NUMBER: _ClassVar[int]
    MIN_SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    SHARD_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    WRITE_CONSISTENCY_FACTOR_FIELD_NUMBER: _ClassVar[int]
    GATE_PROBES_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    threshold: float
    min_face_size_px: float
    min_sharpness: float
    max_abs_yaw_deg: float
    shard_number: int
    replication_factor: int
    write_consistency_factor: int
    gate_probes: bool
    operating_point: str
    def __init__(self, name: _Optional[str] = ..., threshold: _Optional[float] = ..., min_face_size_px: _Optional[float] = ..., min_sharpness: _Optional[float] = ..., max_abs_yaw_deg: _Optional[float] = ..., shard_number: _Optional[int] = ..., replication_factor: _Optional[int] = ..., write_consistency_factor: _Optional[int] = ..., gate_probes: _Optional[bool] = ..., operating_point: _Optional[str] = ...) -> None: ...

class UpdateGalleryRequest(_message.Message):
    __slots__ = ("name", "operating_point")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    operating_point: str
    def __init__(self, name: _Optional[str] = ..., operating_point: _Optional[str] = ...) -> None: ...

class ListGalleriesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGalleriesResponse(_message.Message):
    __slots__ = ("galleries",)
    GALLERIES_FIELD_NUMBER: _ClassVar[int]
    galleries: _containers.RepeatedCompositeFieldContainer[Gallery]
    def __init__(self, galleries: _Optional[_Iterable[_Union[Gallery, _Mapping]]] = ...) -> None: ...

class DeleteGalleryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteGalleryResponse(_message.Message):
    __slots__ = ("faces_deleted",)
    FACES_DELETED_FIELD_NUMBER: _ClassVar[int]
    faces_deleted: int
    def __init__(self, faces_deleted: _Optional[int] = ...) -> None: ...

class ExportGalleryRequest(_message.Message):
    __slots__ = ("gallery",)
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    def __init__(self, gallery: _Optional[str] = ...) -> None: ...

class ExportedFace(_message.Message):
    __slots__ = ("subject_id", "face_id", "embedding", "metadata", "created_at", "quality")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    face_id: str
    embedding: _common_pb2.Embedding
    metadata: _containers.ScalarMap[str, str]
    created_at: float
    quality: _common_pb2.Quality
    def __init__(self, subject_id: _Optional[str] = ..., face_id: _Optional[str] = ..., embedding: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[float] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...

class ImportGalleryRequest(_message.Message):
    __slots__ = ("gallery", "face")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    face: ExportedFace
    def __init__(self, gallery: _Optional[str] = ..., face: _Optional[_Union[ExportedFace, _Mapping]] = ...) -> None: ...

class ImportGalleryResponse(_message.Message):
    __slots__ = ("imported", "skipped")
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    imported: int
    skipped: int
    def __init__(self, imported: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("key_id", "name", "scopes", "created_at", "revoked")
    class ScopesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    name: str
    scopes: _containers.ScalarMap[str, str]
    created_at: float
    revoked: bool
    def __init__(self, key_id: _Optional[str] = ..., name: _Optional[str] = ..., scopes: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[float] = ..., revoked: _Optional[bool] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("name", "scopes")
    class ScopesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    name: str
    scopes: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., scopes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("key", "secret")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    key: ApiKey
    secret: str
    def __init__(self, key: _Optional[_Union[ApiKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FindDuplicatesRequest(_message.Message):
    __slots__ = ("gallery", "page_size", "page_token", "min_score")
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    gallery: str
    page_size: int
    page_token: str
    min_score: float
    def __init__(self, gallery: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., min_score: _Optional[float] = ...) -> None: ...

class DuplicatePair(_message.Message):
    __slots__ = ("subject_a", "subject_b", "score", "face_a", "face_b")
    SUBJECT_A_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_B_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FACE_A_FIELD_NUMBER: _ClassVar[int]
    FACE_B_FIELD_NUMBER: _ClassVar[int]
    subject_a: str
    subject_b: str
    score: float
    face_a: str
    face_b: str
    def __init__(self, subject_a: _Optional[str] = ..., subject_b: _Optional[str] = ..., score: _Optional[float] = ..., face_a: _Optional[str] = ..., face_b: _Optional[str] = ...) -> None: ...

class FindDuplicatesResponse(_message.Message):
    __slots__ = ("pairs", "next_page_token", "total_pairs", "min_score")
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PAIRS_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[DuplicatePair]
    next_page_token: str
    total_pairs: int
    min_score: float
    def __init__(self, pairs: _Optional[_Iterable[_Union[DuplicatePair, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_pairs: _Optional[int] = ..., min_score: _Optional[float] = ...) -> None: ...
