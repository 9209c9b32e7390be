-- +goose Up
CREATE TABLE ingest.observations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_ref text        NOT NULL,
    code        text        NOT NULL,
    value       jsonb       NOT NULL,
    observed_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE ingest.observations;
