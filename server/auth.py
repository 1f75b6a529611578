"""API keys of the registry: bearer secrets, per-gallery roles.

A client sends metadata ``authorization: Bearer <secret>``. Secrets are
random (``secrets.token_urlsafe``), returned once at creation and stored only
as sha256 hashes in ``<data_dir>/api_keys.json`` (written atomically).

Roles are ordered read < enroll < admin; a key holds one role per gallery
name, "*" meaning every gallery. The role each RPC needs is in
:data:`REQUIRED_ROLE`, the one table of it.

With ``api_keys_required`` false (the local development default) a call
*without* a key is served as "anonymous" with the admin role everywhere; a
presented key that is unknown, revoked or malformed is always rejected.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from likeness import errors
from server import _validate as check
from server.domain import DEFAULT_GALLERY

ALL_GALLERIES = "*"
ANONYMOUS = "anonymous"
BOOTSTRAP_KEY_ID = "bootstrap"
KEYS_FILE = "api_keys.json"
#: Lock file next to the keys file: create and revoke hold an exclusive
#: flock on it while they read, change and write the keys file.
KEYS_LOCK_FILE = "api_keys.lock"
_KEY_NAME_MAX = 128


class Role(enum.IntEnum):
    """A role on a gallery; a higher role includes the lower ones."""

    READ = 1
    ENROLL = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str, field: str = "scopes") -> Role:
        for role in cls:
            if role.label == name:
                return role
        raise errors.InvalidArgument(
            f"{field}: role {name[:32]!r} is not one of 'read', 'enroll', 'admin'"
        )

    @property
    def label(self) -> str:
        return self.name.lower()


_R = "/likeness.v1.Registry/"
_A = "/likeness.v1.Admin/"

#: Full gRPC method name -> the role it needs on the request's gallery
#: (Admin methods: on "*").
REQUIRED_ROLE: dict[str, Role] = {
    _R + "Verify": Role.READ,
    _R + "Identify": Role.READ,
    _R + "Compare": Role.READ,
    _R + "GetSubject": Role.READ,
    _R + "ListSubjects": Role.READ,
    _R + "Stats": Role.READ,
    _R + "ListGalleries": Role.READ,
    _R + "Enroll": Role.ENROLL,
    _R + "DeleteFace": Role.ENROLL,
    _R + "DeleteSubject": Role.ENROLL,
    _R + "CreateGallery": Role.ADMIN,
    _R + "UpdateGallery": Role.ADMIN,
    _R + "DeleteGallery": Role.ADMIN,
    _R + "ExportGallery": Role.ADMIN,
    _R + "ImportGallery": Role.ADMIN,
    _R + "FindDuplicates": Role.ADMIN,
    _A + "CreateApiKey": Role.ADMIN,
    _A + "ListApiKeys": Role.ADMIN,
    _A + "RevokeApiKey": Role.ADMIN,
}

#: The role a Verify or Identify needs on the gallery to send a precomputed
#: embedding as its probe. An embedding probe answered with exact cosine
#: scores lets its sender recover a stored template (128 probes with the unit
#: vectors give it back coordinate by coordinate) and replay it, so it takes
#: the role trusted with templates already: the one ExportGallery needs.
TEMPLATE_PROBE_ROLE = REQUIRED_ROLE[_R + "ExportGallery"]


@dataclass(frozen=True)
class ApiKey:
    """A stored key: ``scopes`` maps gallery name or "*" to a role;
    ``created_at`` unix seconds; only the secret's sha256 (hex) is kept."""

    key_id: str
    name: str
    scopes: dict[str, Role]
    created_at: float
    revoked: bool
    secret_sha256: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``key_id`` ("anonymous" without a key) and its scopes."""

    key_id: str
    scopes: Mapping[str, Role] = field(default_factory=dict)

    def role_on(self, gallery: str) -> Role | None:
        """The highest role held on ``gallery`` (directly or through "*")."""
        roles = [r for g, r in self.scopes.items() if g in (gallery, ALL_GALLERIES)]
        return max(roles) if roles else None

    def allows(self, gallery: str | None, role: Role) -> bool:
        """Whether ``role`` is held on ``gallery``: "*" needs a "*" scope;
        None means on at least one gallery."""
        if gallery is None:
            held = max(self.scopes.values()) if self.scopes else None
        elif gallery == ALL_GALLERIES:
            held = self.scopes.get(ALL_GALLERIES)
        else:
            held = self.role_on(gallery)
        return held is not None and held >= role


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeyStore:
    """API keys in a JSON file (atomic replace on every change). Thread-safe.

    Several registry replicas may share the file: :meth:`find` rereads it
    whenever its modification time (ns) changed, and :meth:`create` /
    :meth:`revoke` reread, change and write it under an exclusive ``flock``
    of ``api_keys.lock`` in the same directory, so no replica's change is lost
    and a revoked key is refused by every replica on its next call.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock_path = path.with_name(KEYS_LOCK_FILE)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self._refresh()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        # The inode changes on every atomic replace, so two writes within one
        # mtime tick are still told apart.
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ino, st.st_size

    def _refresh(self) -> None:
        """Reread the file when its mtime (or inode, size) changed; the caller
        holds ``_lock`` or is the constructor."""
        stamp = self._file_stamp()
        if stamp is not None and stamp == self._stamp:
            return
        self._keys = self._load()
        self._stamp = stamp

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _load(self) -> dict[str, ApiKey]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        raw = json.loads(text)
        keys = {}
        for item in raw.get("keys", []):
            key = ApiKey(
                key_id=item["key_id"],
                name=item["name"],
                scopes={g: Role[r.upper()] for g, r in item["scopes"].items()},
                created_at=float(item["created_at"]),
                revoked=bool(item["revoked"]),
                secret_sha256=item["secret_sha256"],
            )
            keys[key.key_id] = key
        return keys

    def _save(self) -> None:
        data = {
            "keys": [
                {
                    "key_id": k.key_id,
                    "name": k.name,
                    "scopes": {g: r.label for g, r in k.scopes.items()},
                    "created_at": k.created_at,
                    "revoked": k.revoked,
                    "secret_sha256": k.secret_sha256,
                }
                for k in self._keys.values()
            ]
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".api_keys.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            Path(tmp).chmod(0o600)
            Path(tmp).replace(self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = self._file_stamp()

    def create(
        self,
        name: str,
        scopes: Mapping[str, str],
        known_galleries: Collection[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret is seen).

        ``name``: at most 128 printable characters (``str.isprintable``: no
        control, format or line-separator character; the ASCII space is
        allowed). ``scopes``: gallery name or "*" -> "read" | "enroll" |
        "admin"; at least one. With ``known_galleries``, a scope must name
        "*", "default" (created by the first Enroll, Verify or Identify) or
        one of them. InvalidArgument naming the field otherwise.
        """
        if len(name) > _KEY_NAME_MAX:
            raise errors.InvalidArgument(f"name: at most {_KEY_NAME_MAX} characters")
        if not name.isprintable():
            # Names are shown by `likeness keys list` and logged: a control
            # character could rewrite a terminal or forge a line.
            raise errors.InvalidArgument(
                "name: contains a control or other non-printable character"
            )
        if not scopes:
            raise errors.InvalidArgument("scopes: at least one gallery -> role entry is required")
        parsed: dict[str, Role] = {}
        for gallery, role in scopes.items():
            if not gallery:
                raise errors.InvalidArgument("scopes: empty gallery name")
            if gallery != ALL_GALLERIES:
                check.gallery_name(gallery, field="scopes")
                if (
                    known_galleries is not None
                    and gallery != DEFAULT_GALLERY
                    and gallery not in known_galleries
                ):
                    raise errors.InvalidArgument(
                        f"scopes: gallery {gallery!r} does not exist (create it first)"
                    )
            parsed[gallery] = Role.parse(role)
        secret = "lk_" + secrets.token_urlsafe(32)
        key = ApiKey(
            key_id="key_" + secrets.token_hex(8),
            name=name,
            scopes=parsed,
            created_at=time.time(),
            revoked=False,
            secret_sha256=_sha256(secret),
        )
        with self._lock, self._file_lock():
            self._refresh()
            self._keys[key.key_id] = key
            self._save()
        return key, secret

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self._lock:
            self._refresh()
            return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))

    def revoke(self, key_id: str) -> None:
        """Revoke a key for good; NotFound for an unknown id."""
        with self._lock, self._file_lock():
            self._refresh()
            key = self._keys.get(key_id)
            if key is None:
                raise errors.NotFound(f"key_id: no API key {key_id[:64]!r}")
            if not key.revoked:
                self._keys[key_id] = ApiKey(
                    key.key_id, key.name, key.scopes, key.created_at, True, key.secret_sha256
                )
                self._save()

    def find(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is, else None."""
        digest = _sha256(secret)
        with self._lock:
            self._refresh()
            keys = list(self._keys.values())
        for key in keys:
            if hmac.compare_digest(key.secret_sha256, digest) and not key.revoked:
                return key
        return None


class Authenticator:
    """Turns call metadata into a :class:`Principal` and checks roles."""

    def __init__(
        self, keys: KeyStore, required: bool, bootstrap_admin_key: str | None = None
    ) -> None:
        self.keys = keys
        self._required = required
        self._bootstrap = _sha256(bootstrap_admin_key) if bootstrap_admin_key else None

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        """The caller; Unauthenticated for a missing (when keys are required),
        malformed, unknown or revoked key."""
        values = [v for k, v in metadata or () if k == "authorization"]
        if not values:
            if self._required:
                raise errors.Unauthenticated("authorization: an API key is required")
            return Principal(ANONYMOUS, {ALL_GALLERIES: Role.ADMIN})
        value = values[0]
        if not isinstance(value, str) or len(values) > 1:
            raise errors.Unauthenticated("authorization: expected one 'Bearer <key>' value")
        scheme, _, secret = value.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise errors.Unauthenticated("authorization: expected 'Bearer <key>'")
        if self._bootstrap is not None and hmac.compare_digest(self._bootstrap, _sha256(secret)):
            return Principal(BOOTSTRAP_KEY_ID, {ALL_GALLERIES: Role.ADMIN})
        key = self.keys.find(secret)
        if key is None:
            raise errors.Unauthenticated("authorization: unknown or revoked API key")
        return Principal(key.key_id, dict(key.scopes))

    @staticmethod
    def authorize(principal: Principal, method: str, gallery: str | None) -> None:
        """PermissionDenied unless ``principal`` holds the role ``method``
        needs (see REQUIRED_ROLE) on ``gallery`` ("*" for the Admin service;
        None for RPCs that touch no one gallery: the role on any gallery)."""
        _require(principal, REQUIRED_ROLE[method], gallery, method.rsplit("/", 1)[-1])

    @staticmethod
    def authorize_embedding_probe(principal: Principal, method: str, gallery: str) -> None:
        """PermissionDenied unless ``principal`` holds TEMPLATE_PROBE_ROLE on
        ``gallery``: the check of a Verify or Identify whose probe is a
        precomputed embedding, on top of :meth:`authorize`."""
        rpc = method.rsplit("/", 1)[-1]
        _require(principal, TEMPLATE_PROBE_ROLE, gallery, f"{rpc} with an embedding probe")


def _require(principal: Principal, role: Role, gallery: str | None, action: str) -> None:
    if not principal.allows(gallery, role):
        where = "any gallery" if gallery is None else f"gallery {gallery[:64]!r}"
        raise errors.PermissionDenied(
            f"{action} needs the {role.label!r} role on {where}; "
            f"key {principal.key_id!r} does not have it"
        )
