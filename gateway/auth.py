"""/v1 authentication: bearer JWTs and API keys, the principal they name, and the admin scope.

Rules (spec/v1-api.md "Authentication"; the choices the spec leaves open are marked *decision*):

- A token is required when `GATEWAY_REQUIRE_AUTH` is true or a verifier is configured (a JWT secret, a
  public key or a JWKS URL). Every /v1 route checks it except `/v1/health`, `/health`, the OpenAPI
  documents and CORS preflights.
- Credentials, first found wins: `Authorization: Bearer <jwt or sk_ key>`, `X-API-Key: <sk_ key>`, and on
  the two stream routes `?access_token=`.
- 401 bodies: `Missing Authorization header`, `Invalid Authorization header` (not Bearer), `Invalid token`
  (anything wrong with a JWT, and *decision*: also an unknown, malformed or revoked API key, so a caller
  cannot tell which keys exist). Each carries `WWW-Authenticate: Bearer`.
- *decision*: when no token is required, a request without credentials passes anonymously; an `sk_` key
  that is sent is still checked (a revoked key gets 401, so a client learns its key is dead); anything
  else (a JWT with no verifier configured, a non-Bearer header) is ignored. With `GATEWAY_REQUIRE_AUTH`
  and no verifier, only API keys authenticate (a JWT is `Invalid token`).
- *decision*: an API key's principal has subject `api_key:<key_id>`, no tenant or issuer, and the
  key's scopes.
- *decision*: when the key repository cannot be asked, 503 `API key store unavailable` (not a 401 that
  would tell the client its key is bad).
- JWTs: HS* algorithms are checked with the secret only; others with the JWKS key matching `kid` (or the
  public key when the token has no `kid` or there is no JWKS). `exp`, `nbf`, `iat` are checked when
  present (*decision*: `exp` is not demanded, as the original gateway did not); `aud`/`iss` when set.

flask-jwt-extended is built for tokens the app issues itself (it demands `sub`, has one key, and answers
with its own bodies); the gateway verifies tokens issued elsewhere, so it uses PyJWT directly, with
PyJWT's `PyJWKClient` for JWKS (key-set cache of `GATEWAY_JWKS_CACHE_SECONDS`, `kid` matching).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import jwt
from flask import Flask, Response, current_app, g, request

from .api_keys import SECRET_PREFIX, ApiKey, ApiKeyService, KeyStoreUnavailable
from .errors import detail_error
from .settings import Settings, SettingsError

log = logging.getLogger(__name__)

EXTENSION = "gateway.auth"
MISSING_HEADER = "Missing Authorization header"
INVALID_HEADER = "Invalid Authorization header"
INVALID_TOKEN = "Invalid token"
ADMIN_REQUIRED = "Admin scope required"
STORE_UNAVAILABLE = "API key store unavailable"
ADMIN_SCOPES = frozenset({"admin", "keys:manage"})

# Routes anyone may call, and the streams, where browsers (EventSource) cannot set headers.
OPEN_PATHS = frozenset({"/v1/health", "/health", "/openapi.json", "/v1/openapi.json"})
STREAM_PATH = re.compile(r"/v1/session/.+/(events|stream)")
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
JWKS_TIMEOUT_SECONDS = 5.0
# Least time between two forced JWKS refreshes caused by unknown `kid`s (bounds a flood of bad tokens).
JWKS_REFRESH_COOLDOWN_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a token or an API key."""

    subject: str | None = None
    tenant: str | None = None
    issuer: str | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)
    key_id: str | None = None

    @property
    def scope(self) -> str:
        """The scopes as a token's `scope` claim spells them."""
        return " ".join(self.scopes)

    @property
    def is_admin(self) -> bool:
        return not ADMIN_SCOPES.isdisjoint(self.scopes)


ANONYMOUS = Principal()


class AuthError(Exception):
    """The request's credentials were refused; `response()` is the answer."""

    def __init__(self, detail: str, status: int = 401) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status

    def response(self) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return detail_error(self.status, self.detail, headers)


# -- claims


def _claim_text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        return str(value) or None
    return None


def tenant_of(claims: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """The first present tenant claim of `names`, in order (the first element when it is a list)."""
    for name in names:
        tenant = _claim_text(claims.get(name))
        if tenant is not None:
            return tenant
    return None


def scopes_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """`scope` or `scp`, either a space-separated string or a list of strings."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, list):
            return tuple(part for item in value if isinstance(item, str) for part in item.split())
    return ()


def principal_from_claims(claims: Mapping[str, Any], tenant_claims: tuple[str, ...]) -> Principal:
    subject = claims.get("sub")
    issuer = claims.get("iss")
    return Principal(subject=subject if isinstance(subject, str) else None,
                     tenant=tenant_of(claims, tenant_claims),
                     issuer=issuer if isinstance(issuer, str) else None,
                     scopes=scopes_of(claims))


def principal_from_key(key: ApiKey) -> Principal:
    return Principal(subject=f"api_key:{key.key_id}", scopes=key.scopes, key_id=key.key_id)


def principal_metadata(principal: Principal) -> dict[str, str]:
    """The principal's fields for event metadata (spec/events.md), only those that are known."""
    fields = {"tenant": principal.tenant, "subject": principal.subject, "issuer": principal.issuer,
              "scope": principal.scope}
    return {name: value for name, value in fields.items() if value}


# -- verifiers


def _load_public_key(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    # Operators often put a PEM in one environment line with literal "\n"s.
    text = pem.replace("\\n", "\n").strip()
    try:
        return load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"GATEWAY_JWT_PUBLIC_KEY: not a PEM public key ({exc})") from None


class TokenVerifier:
    """Checks JWTs against the configured secret, public key or JWKS and returns their claims."""

    def __init__(self, settings: Settings) -> None:
        self.algorithms = frozenset(settings.gateway_jwt_algorithms)
        self.secret = settings.gateway_jwt_secret or None
        pem = settings.gateway_jwt_public_key
        self.public_key = _load_public_key(pem) if pem else None
        self.audience = settings.gateway_jwt_audience or None
        self.issuer = settings.gateway_jwt_issuer or None
        self.leeway = settings.gateway_jwt_leeway
        self.jwks: jwt.PyJWKClient | None = None
        if settings.gateway_jwks_url:
            cache_seconds = settings.gateway_jwks_cache_seconds
            try:
                # Builds no connection: the key set is fetched on the first token that needs it.
                self.jwks = jwt.PyJWKClient(
                    settings.gateway_jwks_url, cache_jwk_set=cache_seconds > 0,
                    lifespan=max(cache_seconds, 1), timeout=JWKS_TIMEOUT_SECONDS,
                    cooldown_duration=min(JWKS_REFRESH_COOLDOWN_SECONDS, cache_seconds))
            except jwt.PyJWKClientError as exc:
                raise SettingsError(f"GATEWAY_JWKS_URL: {exc}") from None

    def _key_for(self, header: Mapping[str, Any]) -> Any:
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not accepted")
        # Keys are chosen by kind, never by what the token claims alone: an HMAC secret is never tried
        # as a public key and a public key is never used as an HMAC secret.
        if algorithm in HMAC_ALGORITHMS:
            if self.secret is None:
                raise jwt.InvalidKeyError("no secret is configured for HMAC tokens")
            return self.secret
        kid = header.get("kid")
        if self.jwks is not None and (kid is not None or self.public_key is None):
            return self.jwks.get_signing_key(kid).key
        if self.public_key is None:
            raise jwt.InvalidKeyError("no public key is configured")
        return self.public_key

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; `AuthError(Invalid token)` for anything wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
            return jwt.decode(token, self._key_for(header), algorithms=[header["alg"]],
                              audience=self.audience, issuer=self.issuer, leeway=self.leeway,
                              options={"verify_aud": self.audience is not None})
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            # The reason helps an operator; the token itself is never logged.
            log.info("token refused: %s: %s", type(exc).__name__, exc)
            raise AuthError(INVALID_TOKEN) from None


class Authenticator:
    """Turns a request's credentials into a `Principal` (one per app, so per process)."""

    def __init__(self, settings: Settings, keys: ApiKeyService) -> None:
        self.keys = keys
        self.tenant_claims = settings.gateway_jwt_tenant_claims
        has_verifier = bool(settings.gateway_jwt_secret or settings.gateway_jwt_public_key
                            or settings.gateway_jwks_url)
        self.verifier = TokenVerifier(settings) if has_verifier else None
        self.required = settings.gateway_require_auth or has_verifier

    def authenticate(self, *, authorization: str | None = None, api_key: str | None = None,
                     access_token: str | None = None) -> Principal:
        """The caller's principal (ANONYMOUS when allowed); raises `AuthError` when refused."""
        token = None
        if authorization and authorization.strip():
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                if self.required:
                    raise AuthError(INVALID_HEADER)
            else:
                token = value.strip()
        if token is None and api_key and api_key.strip():
            token = api_key.strip()
            if not token.startswith(SECRET_PREFIX) and self.required:
                raise AuthError(INVALID_TOKEN)  # X-API-Key carries API keys only
        if token is None and access_token:
            token = access_token
        if token is None:
            if self.required:
                raise AuthError(MISSING_HEADER)
            return ANONYMOUS
        if token.startswith(SECRET_PREFIX):
            return self._key_principal(token)
        if self.verifier is None:
            # Nothing to check a JWT with: refused when a token is required, ignored otherwise.
            if self.required:
                raise AuthError(INVALID_TOKEN)
            return ANONYMOUS
        return principal_from_claims(self.verifier.verify(token), self.tenant_claims)

    def _key_principal(self, secret: str) -> Principal:
        try:
            key = self.keys.verify(secret)
        except KeyStoreUnavailable:
            raise AuthError(STORE_UNAVAILABLE, 503) from None
        if key is None:
            raise AuthError(INVALID_TOKEN)
        return principal_from_key(key)


# -- Flask wiring


def init_app(app: Flask) -> None:
    """Build this app's authenticator and key service from its runtime (no connection is opened)."""
    from .runtime import EXTENSION as RUNTIME

    runtime = app.extensions[RUNTIME]
    keys = ApiKeyService(runtime.api_keys, iterations=runtime.settings.api_key_pbkdf2_iterations)
    app.extensions[EXTENSION] = Authenticator(runtime.settings, keys)


def current_authenticator() -> Authenticator:
    return current_app.extensions[EXTENSION]


def key_service() -> ApiKeyService:
    """This process's API key service (shared by /v1 and the legacy surface)."""
    return current_authenticator().keys


def current_principal() -> Principal:
    return g.get("principal", ANONYMOUS)


def authenticate_request() -> Response | None:
    """`before_request` of /v1: put the caller on `g.principal`, or answer 401/503."""
    if request.method == "OPTIONS" or request.path in OPEN_PATHS:
        return None
    stream = STREAM_PATH.fullmatch(request.path) is not None
    try:
        g.principal = current_authenticator().authenticate(
            authorization=request.headers.get("Authorization"), api_key=request.headers.get("X-API-Key"),
            access_token=request.args.get("access_token") if stream else None)
    except AuthError as exc:
        return exc.response()
    return None


def require_admin(view: Callable[..., Any]) -> Callable[..., Any]:
    """Admin routes: 403 `Admin scope required` when tokens are required and the caller lacks it."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_authenticator().required and not current_principal().is_admin:
            return detail_error(403, ADMIN_REQUIRED)
        return view(*args, **kwargs)

    return wrapper
