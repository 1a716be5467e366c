-- Version 1: sessions and their history, plus the tables of API keys, model profiles and model scores.
-- Applied by gateway.postgres_store.apply_migrations with search_path set to the gateway's schema,
-- so names are unqualified here.

CREATE TABLE sessions (
    session_id    text PRIMARY KEY,
    persona_id    text,
    created_at    double precision NOT NULL,  -- epoch seconds, as the Session dataclass holds them
    updated_at    double precision NOT NULL,
    log_guid      text NOT NULL,
    expires_at    double precision,
    history_floor bigint NOT NULL DEFAULT -1,
    -- Kept beside the rows so retention trimming does not count the history on every insert.
    event_count   integer NOT NULL DEFAULT 0
);

CREATE INDEX sessions_expires_at_idx ON sessions (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE session_events (
    seq        bigserial PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    event_id   text NOT NULL UNIQUE,
    direction  text NOT NULL,
    event      jsonb NOT NULL,
    timestamp  double precision NOT NULL,
    partition  integer,
    "offset"   bigint
);

-- Resume reads a session's events above an offset; trimming drops a session's oldest rows by seq.
CREATE INDEX session_events_session_offset_idx ON session_events (session_id, "offset");
CREATE INDEX session_events_session_seq_idx ON session_events (session_id, seq);

CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    label        text NOT NULL DEFAULT '',
    prefix       text NOT NULL,
    -- One self-describing text, e.g. pbkdf2_sha256$<iterations>$<salt>$<hash>, so the cost can grow.
    secret_hash  text NOT NULL,
    created_at   double precision NOT NULL,  -- epoch seconds, as the API returns them
    created_by   text,
    last_used_at double precision,
    revoked      boolean NOT NULL DEFAULT false,
    scopes       text NOT NULL DEFAULT ''    -- space-separated, like a token's scope claim
);

CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);

CREATE TABLE model_profiles (
    role            text NOT NULL,
    deployment_mode text NOT NULL,
    model           text NOT NULL,
    base_url        text,
    temperature     double precision NOT NULL DEFAULT 0.2,
    kwargs          jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, deployment_mode)
);

CREATE TABLE model_scores (
    id              bigserial PRIMARY KEY,
    model           text NOT NULL,
    deployment_mode text NOT NULL,
    score           double precision NOT NULL,  -- higher is better
    window_start    timestamptz NOT NULL,
    window_end      timestamptz,
    samples         integer NOT NULL DEFAULT 0,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- Also the index behind "newest window per model and mode".
    UNIQUE (model, deployment_mode, window_start)
);
