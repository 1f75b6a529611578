from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaceSelection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACE_SELECTION_UNSPECIFIED: _ClassVar[FaceSelection]
    FACE_SELECTION_LARGEST: _ClassVar[FaceSelection]
    FACE_SELECTION_ALL: _ClassVar[FaceSelection]
    FACE_SELECTION_REQUIRE_SINGLE: _ClassVar[FaceSelection]

class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[Reason]
    REASON_NO_FACE: _ClassVar[Reason]
    REASON_MULTIPLE_FACES: _ClassVar[Reason]
    REASON_FACE_TOO_SMALL: _ClassVar[Reason]
    REASON_FACE_TOO_BLURRY: _ClassVar[Reason]
    REASON_POSE_TOO_LARGE: _ClassVar[Reason]
    REASON_MODEL_MISMATCH: _ClassVar[Reason]
    REASON_GALLERY_NOT_FOUND: _ClassVar[Reason]
    REASON_SUBJECT_NOT_FOUND: _ClassVar[Reason]
    REASON_IMAGE_UNREADABLE: _ClassVar[Reason]
    REASON_IMAGE_TOO_LARGE: _ClassVar[Reason]
    REASON_IMAGE_TOO_SMALL: _ClassVar[Reason]
    REASON_UNKNOWN_OPERATING_POINT: _ClassVar[Reason]
FACE_SELECTION_UNSPECIFIED: FaceSelection
FACE_SELECTION_LARGEST: FaceSelection
FACE_SELECTION_ALL: FaceSelection
FACE_SELECTION_REQUIRE_SINGLE: FaceSelection
REASON_UNSPECIFIED: Reason
REASON_NO_FACE: Reason
REASON_MULTIPLE_FACES: Reason
REASON_FACE_TOO_SMALL: Reason
REASON_FACE_TOO_BLURRY: Reason
REASON_POSE_TOO_LARGE: Reason
REASON_MODEL_MISMATCH: Reason
REASON_GALLERY_NOT_FOUND: Reason
REASON_SUBJECT_NOT_FOUND: Reason
REASON_IMAGE_UNREADABLE: Reason
REASON_IMAGE_TOO_LARGE: Reason
REASON_IMAGE_TOO_SMALL: Reason
REASON_UNKNOWN_OPERATING_POINT: Reason

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("left", "top", "right", "bottom")
    LEFT_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    RIGHT_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_FIELD_NUMBER: _ClassVar[int]
    left: int
    top: int
    right: int
    bottom: int
    def __init__(self, left: _Optional[int] = ..., top: _Optional[int] = ..., right: _Optional[int] = ..., bottom: _Optional[int] = ...) -> None: ...

class Quality(_message.Message):
    __slots__ = ("face_size_px", "sharpness", "yaw_deg", "pitch_deg", "roll_deg")
    FACE_SIZE_PX_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    PITCH_DEG_FIELD_NUMBER: _ClassVar[int]
    ROLL_DEG_FIELD_NUMBER: _ClassVar[int]
    face_size_px: float
    sharpness: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    def __init__(self, face_size_px: _Optional[float] = ..., sharpness: _Optional[float] = ..., yaw_deg: _Optional[float] = ..., pitch_deg: _Optional[float] = ..., roll_deg: _Optional[float] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "model_fingerprint")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    model_fingerprint: str
    def __init__(self, values: _Optional[_Iterable[float]] = ..., model_fingerprint: _Optional[str] = ...) -> None: ...

class SourceRate(_message.Message):
    __slots__ = ("source", "tar", "far", "people", "faces", "genuine_pairs", "impostor_pairs", "distinct_impostor_pairs")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TAR_FIELD_NUMBER: _ClassVar[int]
    FAR_FIELD_NUMBER: _ClassVar[int]
    PEOPLE_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    GENUINE_PAIRS_FIELD_NUMBER: _ClassVar[int]
    IMPOSTOR_PAIRS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_IMPOSTOR_PAIRS_FIELD_NUMBER: _ClassVar[int]
    source: str
    tar: float
    far: float
    people: int
    faces: int
    genuine_pairs: int
    impostor_pairs: int
    distinct_impostor_pairs: int
    def __init__(self, source: _Optional[str] = ..., tar: _Optional[float] = ..., far: _Optional[float] = ..., people: _Optional[int] = ..., faces: _Optional[int] = ..., genuine_pairs: _Optional[int] = ..., impostor_pairs: _Optional[int] = ..., distinct_impostor_pairs: _Optional[int] = ...) -> None: ...

class OperatingPoint(_message.Message):
    __slots__ = ("name", "far", "threshold", "rates")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RATES_FIELD_NUMBER: _ClassVar[int]
    name: str
    far: float
    threshold: float
    rates: _containers.RepeatedCompositeFieldContainer[SourceRate]
    def __init__(self, name: _Optional[str] = ..., far: _Optional[float] = ..., threshold: _Optional[float] = ..., rates: _Optional[_Iterable[_Union[SourceRate, _Mapping]]] = ...) -> None: ...

class Probe(_message.Message):
    __slots__ = ("image", "embedding")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    embedding: Embedding
    def __init__(self, image: _Optional[bytes] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ...) -> None: ...
