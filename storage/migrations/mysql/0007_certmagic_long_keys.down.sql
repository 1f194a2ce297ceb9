-- Fails ("Data too long") while a key or lock name longer than 255
-- characters is stored: delete those first.
ALTER TABLE certmagic_locks
    MODIFY name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

--bun:split

ALTER TABLE certmagic_data
    MODIFY `key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
