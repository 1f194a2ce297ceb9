-- Fails ("Data too long") while a key longer than 255 characters is
-- stored: delete those first. The values go first, so that such a failure
-- changes nothing (MySQL does not roll DDL back); lock names are
-- short-lived.
ALTER TABLE certmagic_data
    MODIFY `key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

--bun:split

ALTER TABLE certmagic_locks
    MODIFY name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
