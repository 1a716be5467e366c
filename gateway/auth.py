"""/v1 authentication: bearer JWTs and API keys, the principal they name, and the admin scope.

(Skeleton: the authentication issue fills this in. Views import `require_admin` and
`current_principal` from here.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import g


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a token or an API key."""

    subject: str | None = None
    tenant: str | None = None
    issuer: str | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes or "keys:manage" in self.scopes


ANONYMOUS = Principal()


def current_principal() -> Principal:
    return g.get("principal", ANONYMOUS)


def require_admin(view: Callable[..., Any]) -> Callable[..., Any]:
    """Admin routes: 403 `Admin scope required` when tokens are required and the caller lacks it."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return wrapper
