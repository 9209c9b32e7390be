-- +goose Up
CREATE TABLE ingest.events (
    id      bigserial PRIMARY KEY,
    payload jsonb NOT NULL,
    digest  bytea GENERATED ALWAYS AS (digest(payload::text, 'sha256')) STORED
);

-- +goose Down
DROP TABLE ingest.events;
