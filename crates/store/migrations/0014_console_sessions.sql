-- The console's sign-ins (issue 18): a session cookie stands for an API token. Only the
-- cookie's SHA-256 is kept; revoking the token ends its sessions (the lookup joins it).
CREATE TABLE console_sessions (
    id_hash     bytea       PRIMARY KEY,
    token_id    uuid        NOT NULL REFERENCES api_tokens (id),
    -- The value every form must carry back (CSRF): random, per session.
    csrf        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
