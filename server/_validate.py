"""Request field validation of the registry; every failure is InvalidArgument
naming the field (the limits are those of proto/likeness/v1/registry.proto)."""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from collections.abc import Mapping, Sequence

import numpy as np

from likeness import errors
from likeness.quality import Quality
from server.domain import DEFAULT_GALLERY

GALLERY_NAME_MAX = 64
SUBJECT_ID_MAX = 128
IDEMPOTENCY_KEY_MAX = 128
METADATA_MAX_ENTRIES = 32
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 1024
TOP_K_DEFAULT = 5
TOP_K_MAX = 100
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
#: Faces one Enroll may add: images + embeddings, and the faces found in its
#: images (FACE_SELECTION_ALL can find several per image). Bulk loads use
#: ImportGallery, which streams.
ENROLL_FACES_MAX = 100
#: An imported face's created_at may lie at most this far ahead of the
#: registry's clock, seconds (clocks of two hosts drift; a year ahead is no time).
CREATED_AT_MAX_AHEAD_S = 86_400.0
_ANGLE_MAX_DEG = 180.0
#: A vector whose L2 norm is within this of 1 is accepted (and re-normalised).
NORM_TOLERANCE = 1e-3

#: A gallery name: 1-64 characters of [a-z0-9_-] (also checked by the
#: stores, which build paths and collection names from it).
GALLERY_NAME_RE = re.compile(r"[a-z0-9_-]{1,64}")
# Printable ASCII without the space: '!' (0x21) to '~' (0x7e).
_SUBJECT_RE = re.compile(r"[\x21-\x7e]{1,128}")
_TOKEN_PREFIX = b"s1:"


def _shorten(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def gallery_name(name: str, field: str = "gallery") -> str:
    """The gallery name, "default" when empty; 1-64 characters of [a-z0-9_-]."""
    if not name:
        return DEFAULT_GALLERY
    if not GALLERY_NAME_RE.fullmatch(name):
        raise errors.InvalidArgument(
            f"{field}: {_shorten(name)} is not a gallery name (1-{GALLERY_NAME_MAX} "
            "characters of a-z, 0-9, '_' and '-')"
        )
    return name


def subject_id(value: str, field: str = "subject_id") -> str:
    """A subject id: 1-128 characters of printable ASCII without spaces."""
    if not value:
        raise errors.InvalidArgument(f"{field}: required (1-{SUBJECT_ID_MAX} characters)")
    if len(value) > SUBJECT_ID_MAX:
        raise errors.InvalidArgument(
            f"{field}: {len(value)} characters, at most {SUBJECT_ID_MAX} allowed"
        )
    if not _SUBJECT_RE.fullmatch(value):
        raise errors.InvalidArgument(
            f"{field}: {_shorten(value)} has a character outside printable ASCII or a space"
        )
    return value


def canonical_uuid(value: object) -> str | None:
    """The canonical (lower-case, hyphenated) form of a UUID string; None
    when ``value`` is not one."""
    try:
        return str(uuid.UUID(value))  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        return None


def face_id(value: str, field: str = "face_id") -> str:
    """A face id: a UUID, returned in its canonical lower-case form."""
    canonical = canonical_uuid(value)
    if canonical is None:
        raise errors.InvalidArgument(f"{field}: {_shorten(str(value))} is not a face id (a UUID)")
    return canonical


def idempotency_key(value: str) -> str | None:
    """None when empty; at most 128 characters."""
    if not value:
        return None
    if len(value) > IDEMPOTENCY_KEY_MAX:
        raise errors.InvalidArgument(
            f"idempotency_key: {len(value)} characters, at most {IDEMPOTENCY_KEY_MAX} allowed"
        )
    return value


def metadata(values: Mapping[str, str], field: str = "metadata") -> dict[str, str]:
    """At most 32 entries; keys of 1-64 characters; values of at most 1024."""
    if len(values) > METADATA_MAX_ENTRIES:
        raise errors.InvalidArgument(
            f"{field}: {len(values)} entries, at most {METADATA_MAX_ENTRIES} allowed"
        )
    for key, value in values.items():
        if not key or len(key) > METADATA_KEY_MAX:
            raise errors.InvalidArgument(
                f"{field}: key {_shorten(key)} must have 1-{METADATA_KEY_MAX} characters"
            )
        if len(value) > METADATA_VALUE_MAX:
            raise errors.InvalidArgument(
                f"{field}[{key!r}]: {len(value)} characters, at most {METADATA_VALUE_MAX} allowed"
            )
    return dict(values)


def enroll_faces(count: int, field: str = "images, embeddings") -> int:
    """``count`` when it is at most ENROLL_FACES_MAX (100)."""
    if count > ENROLL_FACES_MAX:
        raise errors.InvalidArgument(
            f"{field}: {count} faces, at most {ENROLL_FACES_MAX} per Enroll "
            "(use ImportGallery or several requests for more)"
        )
    return count


def created_at(value: float, now: float, field: str) -> float:
    """A unix time in seconds: finite, >= 0 (0 = unset), at most
    CREATED_AT_MAX_AHEAD_S (one day) after ``now``."""
    if not math.isfinite(value) or not 0.0 <= value <= now + CREATED_AT_MAX_AHEAD_S:
        raise errors.InvalidArgument(
            f"{field}: {value} is not a unix time in seconds up to one day from now"
        )
    return float(value)


def quality(value: Quality, field: str) -> Quality:
    """Finite values; face_size_px and sharpness >= 0; yaw, pitch and roll
    in [-180, 180] degrees (the units of likeness.v1.Quality)."""
    non_negative(value.face_size_px, f"{field}.face_size_px")
    non_negative(value.sharpness, f"{field}.sharpness")
    for name in ("yaw_deg", "pitch_deg", "roll_deg"):
        angle = getattr(value, name)
        if not math.isfinite(angle) or abs(angle) > _ANGLE_MAX_DEG:
            raise errors.InvalidArgument(
                f"{field}.{name}: {angle} is not an angle in [-180, 180] degrees"
            )
    return value


def top_k(value: int) -> int:
    """1-100; 0 means 5."""
    if value == 0:
        return TOP_K_DEFAULT
    if not 1 <= value <= TOP_K_MAX:
        raise errors.InvalidArgument(f"top_k: {value} is out of range 1-{TOP_K_MAX} (0 = default)")
    return value


def page_size(value: int) -> int:
    """1-1000; 0 means 100."""
    if value == 0:
        return PAGE_SIZE_DEFAULT
    if not 1 <= value <= PAGE_SIZE_MAX:
        raise errors.InvalidArgument(
            f"page_size: {value} is out of range 1-{PAGE_SIZE_MAX} (0 = default)"
        )
    return value


def score(value: float, field: str) -> float:
    """A cosine similarity: finite, in [-1, 1]."""
    if not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise errors.InvalidArgument(f"{field}: {value} is not a cosine similarity in [-1, 1]")
    return float(value)


def non_negative(value: float, field: str, maximum: float = math.inf) -> float:
    """A finite value in [0, maximum]."""
    if not math.isfinite(value) or not 0.0 <= value <= maximum:
        raise errors.InvalidArgument(f"{field}: {value} must be finite and in [0, {maximum}]")
    return float(value)


def vector(values: Sequence[float] | np.ndarray, dim: int, field: str) -> np.ndarray:
    """A float32 (dim,) vector with finite values and L2 norm within 1e-3 of 1,
    returned re-normalised to norm 1."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.shape[0] != dim:
        raise errors.InvalidArgument(
            f"{field}: {array.size} values, the gallery's model has dimension {dim}"
        )
    if not np.all(np.isfinite(array)):
        raise errors.InvalidArgument(f"{field}: contains NaN or infinite values")
    norm = float(np.linalg.norm(array))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise errors.InvalidArgument(
            f"{field}: L2 norm {norm:.6g} is not 1 (within {NORM_TOLERANCE}); "
            "send L2-normalised embeddings"
        )
    return (array / norm).astype(np.float32)


def encode_page_token(last_subject_id: str) -> str:
    """An opaque token for the page after ``last_subject_id``."""
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + last_subject_id.encode("ascii")).decode("ascii")


def decode_page_token(token: str) -> str | None:
    """The subject id a page token continues after; None for an empty token."""
    if not token:
        return None
    bad = errors.InvalidArgument("page_token: not a token returned by ListSubjects")
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise bad from None
    if not raw.startswith(_TOKEN_PREFIX):
        raise bad
    try:
        after = raw[len(_TOKEN_PREFIX) :].decode("ascii")
    except UnicodeDecodeError:
        raise bad from None
    if not _SUBJECT_RE.fullmatch(after):
        raise bad
    return after
