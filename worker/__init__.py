"""The reference conversation worker: a deterministic stand-in for the platform's real worker."""

from .reference import ReferenceWorker, reply_events

__all__ = ["ReferenceWorker", "reply_events"]
