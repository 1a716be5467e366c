"""Ending sessions: terminate and reset (shared by the legacy endpoints) and the periodic expiry sweep.

Terminating is safe to repeat and to race: several gateway processes may sweep the same store, and
only the one whose delete removed the session announces it, so a worker hears of it once.

Control events are announced after the store changed. When the bus does not take one, the
termination or reset stands (the client asked for it and the store already shows it; undoing it
would leave a half-deleted chat) and a warning is logged: a worker that missed the event keeps its
state for a session nobody can reach any more, and its late replies are not recorded, because the
recorder keeps no events of unknown sessions and none below a reset's floor.
"""

from __future__ import annotations

import logging
import time

from .attachments import delete_session_files
from .background import Background
from .bus import BusUnavailable
from .events import CONTROL_RESET, CONTROL_TERMINATE, control_event
from .runtime import Runtime
from .sessions import publish_event, session_cache_key

log = logging.getLogger(__name__)


def _announce(runtime: Runtime, session_id: str, control: str) -> None:
    """Publish a control event so the worker can stop; a failure is logged, not raised."""
    try:
        publish_event(runtime, control_event(session_id=session_id, control=control))
    except Exception:
        log.warning("could not publish %s for session %s; the change stands without it",
                    control, session_id, exc_info=True)


def terminate_session(runtime: Runtime, session_id: str) -> bool:
    """Delete a session with its history, expiry and attachments; False when it did not exist."""
    deleted = runtime.store.delete_session(session_id)  # the expiry lives on the session row
    # Files go even when the session is already gone: an earlier termination may have stopped
    # between the two steps, and removing a missing directory is harmless.
    delete_session_files(runtime.settings.attachments_dir, session_id)
    if not deleted:
        return False
    try:
        runtime.cache.delete(session_cache_key(session_id))
    except Exception:  # an entry left behind only expires later; the session is gone either way
        log.warning("could not drop the cache entry of session %s", session_id, exc_info=True)
    _announce(runtime, session_id, CONTROL_TERMINATE)
    return True


def reset_session(runtime: Runtime, session_id: str) -> bool:
    """Clear a session's history and start a new log guid; False when it does not exist.

    The floor is what this process's hub has read of the session's partition, so events from before
    the reset are not recorded afterwards and a stream resuming from before it gets a reset notice.
    """
    try:
        floor: int | None = runtime.hub.position(session_id) - 1
    except (RuntimeError, BusUnavailable):
        floor = None  # hub not running or bus down: the store falls back to the newest offset it held
    if runtime.store.reset_session(session_id, floor=floor) is None:
        return False
    _announce(runtime, session_id, CONTROL_RESET)
    return True


class ExpirySweeper(Background):
    """Every `interval` seconds, terminates the sessions whose `expires_at` has passed."""

    thread_name = "expiry-sweeper"

    def __init__(self, runtime: Runtime, interval: float) -> None:
        super().__init__()
        self.runtime = runtime
        self.interval = interval

    def sweep_once(self, now: float | None = None) -> list[str]:
        """Terminate what has expired by `now`; return the ids this call terminated."""
        now = time.time() if now is None else now
        terminated = []
        for session_id in self.runtime.store.expired_sessions(now):
            # A call may have extended the lifetime since the query; look again right before.
            session = self.runtime.store.get_session(session_id)
            if session is None or session.expires_at is None or session.expires_at > now:
                continue
            if terminate_session(self.runtime, session_id):
                log.info("session %s expired and was terminated", session_id)
                terminated.append(session_id)
        return terminated

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sweep_once()
            except Exception:  # a store hiccup must not end the sweeping
                log.exception("expiry sweep failed; trying again in %gs", self.interval)
