-- refresh_tokens goes before users because of its foreign key.
DROP TABLE IF EXISTS certmagic_locks;

--bun:split

DROP TABLE IF EXISTS certmagic_data;

--bun:split

DROP TABLE IF EXISTS devices;

--bun:split

DROP TABLE IF EXISTS refresh_tokens;

--bun:split

DROP TABLE IF EXISTS audit_log;

--bun:split

DROP TABLE IF EXISTS clients;

--bun:split

DROP TABLE IF EXISTS users;

--bun:split

DROP TABLE IF EXISTS messages;
