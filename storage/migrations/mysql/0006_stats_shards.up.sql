-- Split every statistics counter over shards (storage/stats.go,
-- StatsShards): a transaction adds to the rows of one shard, readers sum
-- over the shards, so concurrent writers no longer queue on one counter
-- row's lock until the other commits. The counters already stored become
-- shard 0.

ALTER TABLE message_counts
    ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0 AFTER status,
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (client_id, status, shard);

--bun:split

ALTER TABLE message_hours
    ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0 AFTER hour,
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (hour, shard);

--bun:split

ALTER TABLE message_latency
    ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0 AFTER bucket,
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (hour, bucket, shard);
