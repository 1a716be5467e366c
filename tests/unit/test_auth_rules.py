"""Units of /v1 authentication: claims to principal, credential rules, public-key tokens, the key service."""

from __future__ import annotations

import re
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.api_keys import ApiKeyService, MemoryApiKeyRepository, check_secret, key_id_of
from gateway.auth import (ANONYMOUS, Authenticator, AuthError, Principal, TokenVerifier, principal_from_claims,
                          principal_metadata, scopes_of, tenant_of)
from gateway.settings import SettingsError, load_settings

TENANT_CLAIMS = ("tenant", "org", "customer")
ITERATIONS = 390_000


# -- claims


@pytest.mark.parametrize("claims, tenant", [
    ({"tenant": "acme", "org": "other"}, "acme"),
    ({"org": "from-org", "customer": "c"}, "from-org"),
    ({"tenant": ["first", "second"]}, "first"),
    ({"tenant": [], "org": "next"}, "next"),
    ({"tenant": None, "customer": 42}, "42"),
    ({"tenant": {"id": "x"}, "org": "plain"}, "plain"),
    ({"sub": "u"}, None),
])
def test_tenant_is_the_first_present_claim(claims, tenant):
    assert tenant_of(claims, TENANT_CLAIMS) == tenant


@pytest.mark.parametrize("claims, scopes", [
    ({"scope": "read write admin"}, ("read", "write", "admin")),
    ({"scp": ["read", "keys:manage"]}, ("read", "keys:manage")),
    ({"scp": "read write"}, ("read", "write")),
    ({"scope": "a", "scp": ["b"]}, ("a",)),
    ({}, ()),
])
def test_scope_comes_from_scope_or_scp(claims, scopes):
    assert scopes_of(claims) == scopes


def test_principal_from_claims_and_its_event_metadata():
    principal = principal_from_claims(
        {"sub": "user-1", "iss": "https://issuer", "org": ["acme"], "scp": ["read", "admin"]}, TENANT_CLAIMS)
    assert principal == Principal(subject="user-1", tenant="acme", issuer="https://issuer", scopes=("read", "admin"))
    assert principal.is_admin
    assert principal_metadata(principal) == {
        "tenant": "acme", "subject": "user-1", "issuer": "https://issuer", "scope": "read admin"}
    assert principal_metadata(Principal(subject="only")) == {"subject": "only"}
    assert principal_metadata(ANONYMOUS) == {}


@pytest.mark.parametrize("scopes, admin", [
    (("admin",), True), (("keys:manage",), True), (("read", "write"), False), ((), False), (("administrator",), False),
])
def test_admin_scope(scopes, admin):
    assert Principal(scopes=scopes).is_admin is admin


# -- credential rules


def tampered(secret: str) -> str:
    """The secret with its last character changed."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


def authenticator(**settings) -> tuple[Authenticator, ApiKeyService]:
    keys = ApiKeyService(MemoryApiKeyRepository(), iterations=ITERATIONS)
    return Authenticator(load_settings({}, **settings), keys), keys


def refused(auth: Authenticator, **credentials) -> str:
    with pytest.raises(AuthError) as error:
        auth.authenticate(**credentials)
    assert error.value.status == 401
    return error.value.detail


def test_without_a_required_token_anything_but_an_api_key_passes_as_anonymous():
    auth, keys = authenticator()
    assert not auth.required
    assert auth.authenticate() is ANONYMOUS
    assert auth.authenticate(authorization="Basic abc") is ANONYMOUS
    assert auth.authenticate(authorization="Bearer some.jwt.value") is ANONYMOUS
    secret = keys.create(label="k", created_by=None)["secret"]
    assert auth.authenticate(authorization=f"Bearer {secret}").key_id == key_id_of(secret)
    assert refused(auth, api_key=tampered(secret)) == "Invalid token"


def test_required_token_answers_with_the_spec_texts():
    auth, _ = authenticator(gateway_require_auth=True)
    assert refused(auth) == "Missing Authorization header"
    assert refused(auth, authorization="   ") == "Missing Authorization header"
    assert refused(auth, authorization="Token abc") == "Invalid Authorization header"
    assert refused(auth, authorization="Bearer ") == "Invalid Authorization header"
    assert refused(auth, api_key="legacy-looking-key") == "Invalid token"
    # No verifier is configured, so a JWT cannot be checked, and is refused.
    assert refused(auth, authorization="Bearer a.b.c") == "Invalid token"


def test_a_verifier_makes_a_token_required_and_the_bearer_scheme_is_case_insensitive():
    auth, _ = authenticator(gateway_jwt_secret="s" * 64)
    assert auth.required
    token = jwt.encode({"sub": "u", "tenant": "t"}, "s" * 64, algorithm="HS256")
    principal = auth.authenticate(authorization=f"bearer {token}")
    assert (principal.subject, principal.tenant) == ("u", "t")
    assert auth.authenticate(access_token=token).subject == "u"


def test_key_store_failure_is_503_not_a_bad_key():
    class Down(MemoryApiKeyRepository):
        def get(self, key_id):
            raise ConnectionError("postgres is down")

    auth = Authenticator(load_settings({}, gateway_require_auth=True),
                         ApiKeyService(Down(), iterations=ITERATIONS))
    with pytest.raises(AuthError) as error:
        auth.authenticate(api_key=f"sk_{'a' * 32}_{'b' * 43}")
    assert (error.value.status, error.value.detail) == (503, "API key store unavailable")


# -- public-key tokens (GATEWAY_JWT_PUBLIC_KEY)


def test_public_key_setting_verifies_rs256_and_accepts_escaped_newlines():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    verifier = TokenVerifier(load_settings({}, gateway_jwt_public_key=pem.replace("\n", "\\n"),
                                           gateway_jwt_audience="api"))
    token = jwt.encode({"sub": "u", "aud": "api", "exp": time.time() + 60}, private_key, algorithm="RS256")
    assert verifier.verify(token)["sub"] == "u"
    # The public key is never usable as an HMAC secret (the classic algorithm-confusion attack).
    forged = jwt.encode({"sub": "evil", "aud": "api"}, "x" * 64, algorithm="HS256")
    with pytest.raises(AuthError):
        verifier.verify(forged)


def test_a_malformed_public_key_is_a_settings_error():
    with pytest.raises(SettingsError, match="GATEWAY_JWT_PUBLIC_KEY"):
        TokenVerifier(load_settings({}, gateway_jwt_public_key="not a pem"))


# -- the key service


def test_created_key_has_the_spec_shape_and_only_a_slow_salted_hash_is_stored():
    repository = MemoryApiKeyRepository()
    service = ApiKeyService(repository, iterations=ITERATIONS)
    created = service.create(label="ci", created_by="admin-1", scopes=["admin"])
    secret = created["secret"]
    assert re.fullmatch(rf"sk_{created['key_id']}_[A-Za-z0-9_-]{{43}}", secret)
    assert created["prefix"] == secret[:12]
    stored = repository.get(created["key_id"])
    assert re.fullmatch(rf"pbkdf2_sha256\${ITERATIONS}\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+", stored.secret_hash)
    assert secret not in stored.secret_hash
    assert check_secret(secret, stored.secret_hash)
    other = service.create(label="ci", created_by=None)
    assert repository.get(other["key_id"]).secret_hash.split("$")[2] != stored.secret_hash.split("$")[2]


def test_verify_accepts_only_the_exact_secret_of_an_active_key():
    service = ApiKeyService(MemoryApiKeyRepository(), iterations=ITERATIONS)
    created = service.create(label="x", created_by=None, scopes=["read"])
    secret = created["secret"]
    assert service.verify(secret).scopes == ("read",)
    assert service.verify(tampered(secret)) is None
    assert service.verify(f"sk_{'0' * 32}_{'a' * 43}") is None  # unknown key id
    assert service.verify("sk_not-a-key") is None
    assert service.verify("") is None


def test_revocation_is_immediate_here_and_within_the_cache_time_in_another_process():
    repository = MemoryApiKeyRepository()  # shared, as Postgres is shared by processes
    here = ApiKeyService(repository, iterations=ITERATIONS, cache_seconds=0.3)
    elsewhere = ApiKeyService(repository, iterations=ITERATIONS, cache_seconds=0.3)
    secret = here.create(label="x", created_by=None)["secret"]
    assert here.verify(secret) is not None and elsewhere.verify(secret) is not None

    assert here.revoke(key_id_of(secret))
    assert here.verify(secret) is None
    deadline = time.monotonic() + 5
    while elsewhere.verify(secret) is not None:
        assert time.monotonic() < deadline, "the other process kept accepting a revoked key"
        time.sleep(0.05)
    assert not here.revoke("0" * 32)


def test_last_used_at_is_written_at_most_once_a_minute():
    class CountingRepository(MemoryApiKeyRepository):
        touches = 0

        def touch(self, key_id, now, not_since):
            CountingRepository.touches += 1
            super().touch(key_id, now, not_since)

    repository = CountingRepository()
    service = ApiKeyService(repository, iterations=ITERATIONS)
    created = service.create(label="x", created_by=None)
    assert created["last_used_at"] is None
    for _ in range(3):
        service.verify(created["secret"])
    assert CountingRepository.touches == 1
    assert service.list()[0]["last_used_at"] >= created["created_at"]


def test_any_issued_sees_keys_made_by_another_process_within_the_cache_time():
    repository = MemoryApiKeyRepository()
    watcher = ApiKeyService(repository, iterations=ITERATIONS, cache_seconds=0.2)
    assert not watcher.any_issued()
    ApiKeyService(repository, iterations=ITERATIONS).create(label="x", created_by=None)
    deadline = time.monotonic() + 5
    while not watcher.any_issued():
        assert time.monotonic() < deadline
        time.sleep(0.05)
