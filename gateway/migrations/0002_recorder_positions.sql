-- How far the history recorder has stored each partition of the outbound topic: replay reads the
-- stored history below this offset and the bus above it.
CREATE TABLE recorder_positions (
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
