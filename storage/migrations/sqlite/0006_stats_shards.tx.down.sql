-- Fold the shards back into one row per counter: 0005's tables, filled
-- with the sums.

CREATE TABLE message_counts_folded (
    client_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, status)
) WITHOUT ROWID;

--bun:split

INSERT INTO message_counts_folded (client_id, status, n)
SELECT client_id, status, SUM(n) FROM message_counts GROUP BY client_id, status;

--bun:split

DROP TABLE message_counts;

--bun:split

ALTER TABLE message_counts_folded RENAME TO message_counts;

--bun:split

CREATE TABLE message_hours_folded (
    hour INTEGER NOT NULL PRIMARY KEY,
    registered INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0
);

--bun:split

INSERT INTO message_hours_folded (hour, registered, delivered, failed)
SELECT hour, SUM(registered), SUM(delivered), SUM(failed) FROM message_hours GROUP BY hour;

--bun:split

DROP TABLE message_hours;

--bun:split

ALTER TABLE message_hours_folded RENAME TO message_hours;

--bun:split

CREATE TABLE message_latency_folded (
    hour INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, bucket)
) WITHOUT ROWID;

--bun:split

INSERT INTO message_latency_folded (hour, bucket, n)
SELECT hour, bucket, SUM(n) FROM message_latency GROUP BY hour, bucket;

--bun:split

DROP TABLE message_latency;

--bun:split

ALTER TABLE message_latency_folded RENAME TO message_latency;
