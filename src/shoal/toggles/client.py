"""The Python SDK: `ToggleClient` answers toggle questions locally from a watched snapshot.

Used by application code (directly or through `shoal.toggles.provider.ShoalProvider`):

    toggles = ToggleClient()                    # SHOAL_SERVER and SHOAL_NAMESPACE from env
    if toggles.is_enabled("new-checkout", {"userId": user_id}):
        ...
    toggles.variant("checkout-layout", {"userId": user_id})   # -> "B" or None
    toggles.close()

A background thread lists the namespace's FeatureToggles, then follows the watch stream and
swaps in a new, precompiled snapshot on every change, so a decision never waits on the network
and a change reaches the app as fast as the server streams it. When the server is unreachable
the thread retries with exponential backoff (0.1 s doubling to `max_backoff`) while the app
keeps answering from the last snapshot; an expired revision (Gone) re-lists at once. With
`snapshot_path`, every new snapshot is also written to a file (atomically) and read at start,
so a service that restarts while the server is down still answers as before.

Threads: the public methods are safe from any thread. The snapshot is an immutable dict that is
replaced, never mutated, so readers take no lock.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoal.api.errors import Gone
from shoal.api.featuretoggle import FeatureToggle
from shoal.client import Client, TypedEvent
from shoal.toggles.engine import (
    CompiledToggle,
    Evaluation,
    compile_resource,
    evaluate,
    with_current_time,
)

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:7070"
DEFAULT_NAMESPACE = "default"
FIRST_BACKOFF_SECONDS = 0.1

Listener = Callable[[], None]


class ToggleClient:
    """Local toggle evaluation kept current by a watch stream (see module docstring)."""

    def __init__(
        self,
        server: str | None = None,
        namespace: str | None = None,
        *,
        snapshot_path: str | os.PathLike[str] | None = None,
        wait_seconds: float = 2.0,
        max_backoff: float = 2.0,
        request_timeout: float = 5.0,
    ) -> None:
        """Start syncing; wait up to `wait_seconds` for the first snapshot (0: do not wait)."""
        self.server = (server or os.environ.get("SHOAL_SERVER") or DEFAULT_SERVER).rstrip("/")
        self.namespace = namespace or os.environ.get("SHOAL_NAMESPACE") or DEFAULT_NAMESPACE
        self._snapshot_path = Path(snapshot_path) if snapshot_path else None
        self._max_backoff = max_backoff
        self._request_timeout = request_timeout
        self._toggles: Mapping[str, CompiledToggle] = {}
        self._documents: dict[str, dict[str, Any]] = {}
        self._revision = 0
        self._connected = False
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._http: Client | None = None
        self._http_lock = threading.Lock()
        self._load_snapshot_file()
        self._thread = threading.Thread(
            target=self._sync_forever, name=f"shoal-toggles-{self.namespace}", daemon=True
        )
        self._thread.start()
        if wait_seconds > 0:
            self._ready.wait(wait_seconds)

    # -- answers (any thread, no network) ----------------------------------------------------

    def evaluate(self, name: str, context: Mapping[str, Any] | None = None) -> Evaluation | None:
        """The full answer (value, variant, reason, payload), or None for an unknown toggle."""
        toggle = self._toggles.get(name)
        if toggle is None:
            return None
        ctx: Mapping[str, Any] = context if context is not None else {}
        if toggle.needs_current_time:
            ctx = with_current_time(toggle, ctx, datetime.now(UTC))
        return evaluate(toggle, ctx)

    def is_enabled(
        self, name: str, context: Mapping[str, Any] | None = None, default: bool = False
    ) -> bool:
        """Whether the feature is on for this context; `default` for an unknown toggle."""
        answer = self.evaluate(name, context)
        return default if answer is None else answer.value

    def variant(self, name: str, context: Mapping[str, Any] | None = None) -> str | None:
        """The variant assigned to this context, or None (off, unknown, or no variants).

        The variant's payload is `evaluate(name, context).payload`."""
        answer = self.evaluate(name, context)
        return None if answer is None else answer.variant

    def names(self) -> list[str]:
        return sorted(self._toggles)

    def get(self, name: str) -> CompiledToggle | None:
        return self._toggles.get(name)

    @property
    def revision(self) -> int:
        """The store revision the snapshot reflects (0 before the first list)."""
        return self._revision

    @property
    def connected(self) -> bool:
        """True while the watch stream is up; False means answers may be stale."""
        return self._connected

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until a snapshot was listed from the server (or read from the file)."""
        return self._ready.wait(timeout)

    def on_change(self, listener: Listener) -> None:
        """Call `listener()` (on the sync thread) after every snapshot change."""
        self._listeners.append(listener)

    def close(self, wait_seconds: float = 0.0) -> None:
        """Stop syncing; answers keep coming from the last snapshot. Returns at once.

        A stream read blocked in the sync thread cannot be interrupted through the API
        client: its pool is closed and the (daemon) thread ends at the next line the server
        sends (a BOOKMARK comes every ~5 s) or when the server closes the stream. Pass
        `wait_seconds` to wait for that.
        """
        self._stop.set()
        with self._http_lock:
            if self._http is not None:
                self._http.close()
        self._thread.join(timeout=wait_seconds)

    def __enter__(self) -> ToggleClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- sync thread -------------------------------------------------------------------------

    def _sync_forever(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stop.is_set():
            http = self._open_http()
            if http is None:
                return
            try:
                self._list_and_watch(http)
                backoff = FIRST_BACKOFF_SECONDS  # the stream ended cleanly: resume at once
            except Gone:
                log.info("toggle watch revision expired; re-listing")
                continue
            except Exception as error:
                # Anything (server down, restarted, bad answer): keep the last snapshot, retry.
                if self._stop.is_set():
                    return
                if self._connected or backoff == FIRST_BACKOFF_SECONDS:
                    log.warning(
                        "toggle sync with %s failed (%s); answering from the last "
                        "snapshot, retrying",
                        self.server,
                        error,
                    )
                self._connected = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            finally:
                self._connected = False
                http.close()

    def _open_http(self) -> Client | None:
        with self._http_lock:
            if self._stop.is_set():
                return None
            self._http = Client(self.server, timeout=self._request_timeout)
            return self._http

    def _list_and_watch(self, http: Client) -> None:
        listed = http.list(FeatureToggle, self.namespace)
        self._publish({t.metadata.name: t.to_json() for t in listed.items}, listed.revision)
        self._connected = True
        self._ready.set()
        since = listed.revision
        while not self._stop.is_set():
            for event in http.watch(FeatureToggle, self.namespace, since=since):
                self._apply(event)
                since = event.revision

    def _apply(self, event: TypedEvent[FeatureToggle]) -> None:
        documents = dict(self._documents)
        name = event.object.metadata.name
        if event.type == "DELETED":
            documents.pop(name, None)
        else:
            documents[name] = event.object.to_json()
        self._publish(documents, event.revision)

    def _publish(self, documents: dict[str, dict[str, Any]], revision: int) -> None:
        compiled = dict(self._toggles)
        for name in list(compiled):
            if name not in documents:
                del compiled[name]
        for name, document in documents.items():
            previous = self._documents.get(name)
            if previous != document or name not in compiled:
                compiled[name] = compile_resource(FeatureToggle.from_json(document))
        self._documents = documents
        self._toggles = compiled
        self._revision = revision
        self._save_snapshot_file()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("toggle change listener failed")

    # -- snapshot file -----------------------------------------------------------------------

    def _load_snapshot_file(self) -> None:
        path = self._snapshot_path
        if path is None or not path.exists():
            return
        try:
            saved = json.loads(path.read_text())
            documents = {d["metadata"]["name"]: d for d in saved["items"]}
            self._toggles = {
                name: compile_resource(FeatureToggle.from_json(d)) for name, d in documents.items()
            }
            self._documents = documents
            self._revision = int(saved.get("revision", 0))
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("ignoring unreadable toggle snapshot %s: %s", path, error)
            return
        self._ready.set()

    def _save_snapshot_file(self) -> None:
        path = self._snapshot_path
        if path is None:
            return
        saved = {
            "namespace": self.namespace,
            "revision": self._revision,
            "items": list(self._documents.values()),
        }
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(saved))
            os.replace(temporary, path)
        except OSError as error:
            log.warning("cannot write toggle snapshot %s: %s", path, error)
