-- User agents and their subscriptions (channels).
CREATE TABLE user_agents (
    uaid         uuid PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_connect timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    uaid           uuid NOT NULL REFERENCES user_agents (uaid) ON DELETE CASCADE,
    channel_id     uuid NOT NULL,
    -- The application server's public key (RFC 8292 §3.2) for a restricted
    -- subscription; NULL when anyone may send.
    app_server_key bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (uaid, channel_id)
);
