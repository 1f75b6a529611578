"""The API-key file shared by replicas: processes creating and revoking
keys at the same time lose none of each other's changes (the ``flock``
around read-change-write), and threads of one process neither."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from server.auth import KEYS_FILE, KeyStore

PER_WORKER = 25


def _create_keys(path: str, start: multiprocessing.synchronize.Barrier, tag: str) -> None:
    store = KeyStore(Path(path))
    start.wait()
    for i in range(PER_WORKER):
        store.create(f"{tag}-{i}", {"*": "read"})


def _revoke_keys(path: str, start: multiprocessing.synchronize.Barrier, key_ids: list[str]) -> None:
    store = KeyStore(Path(path))
    start.wait()
    for key_id in key_ids:
        store.revoke(key_id)


def _run(*workers: multiprocessing.Process) -> None:
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0


def test_two_processes_creating_keys_at_once_lose_none(tmp_path: Path) -> None:
    path = str(tmp_path / KEYS_FILE)
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)
    _run(
        ctx.Process(target=_create_keys, args=(path, start, "a")),
        ctx.Process(target=_create_keys, args=(path, start, "b")),
    )
    names = sorted(k.name for k in KeyStore(Path(path)).list())
    assert names == sorted(f"{t}-{i}" for t in "ab" for i in range(PER_WORKER))


def test_keys_created_while_others_are_revoked_keep_both_changes(tmp_path: Path) -> None:
    path = str(tmp_path / KEYS_FILE)
    store = KeyStore(Path(path))
    old = [store.create(f"old-{i}", {"*": "read"}) for i in range(PER_WORKER)]
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)
    _run(
        ctx.Process(target=_create_keys, args=(path, start, "new")),
        ctx.Process(target=_revoke_keys, args=(path, start, [k.key_id for k, _ in old])),
    )
    keys = {k.name: k for k in KeyStore(Path(path)).list()}
    assert sorted(keys) == sorted(
        [f"old-{i}" for i in range(PER_WORKER)] + [f"new-{i}" for i in range(PER_WORKER)]
    )
    assert all(keys[f"old-{i}"].revoked for i in range(PER_WORKER))
    assert not any(keys[f"new-{i}"].revoked for i in range(PER_WORKER))
    # A revoked key's secret no longer authenticates; a new one does.
    assert all(store.find(secret) is None for _, secret in old)


def test_threads_of_one_process_sharing_a_store_lose_no_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / KEYS_FILE)
    threads = [
        threading.Thread(
            target=lambda t=t: [store.create(f"{t}-{i}", {"*": "read"}) for i in range(10)]
        )
        for t in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(KeyStore(tmp_path / KEYS_FILE).list()) == 40
