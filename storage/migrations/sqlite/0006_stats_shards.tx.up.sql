-- Split every statistics counter over shards; see the MySQL file of this
-- migration for why. SQLite cannot change a primary key, so each table is
-- built anew with the shard in its key, filled (the counters already stored
-- become shard 0) and put in place of the old one.

CREATE TABLE message_counts_sharded (
    client_id TEXT NOT NULL,
    status TEXT NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, status, shard)
) WITHOUT ROWID;

--bun:split

INSERT INTO message_counts_sharded (client_id, status, shard, n)
SELECT client_id, status, 0, n FROM message_counts;

--bun:split

DROP TABLE message_counts;

--bun:split

ALTER TABLE message_counts_sharded RENAME TO message_counts;

--bun:split

CREATE TABLE message_hours_sharded (
    hour INTEGER NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    registered INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, shard)
) WITHOUT ROWID;

--bun:split

INSERT INTO message_hours_sharded (hour, shard, registered, delivered, failed)
SELECT hour, 0, registered, delivered, failed FROM message_hours;

--bun:split

DROP TABLE message_hours;

--bun:split

ALTER TABLE message_hours_sharded RENAME TO message_hours;

--bun:split

CREATE TABLE message_latency_sharded (
    hour INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, bucket, shard)
) WITHOUT ROWID;

--bun:split

INSERT INTO message_latency_sharded (hour, bucket, shard, n)
SELECT hour, bucket, 0, n FROM message_latency;

--bun:split

DROP TABLE message_latency;

--bun:split

ALTER TABLE message_latency_sharded RENAME TO message_latency;
