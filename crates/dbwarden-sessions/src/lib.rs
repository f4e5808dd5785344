//! dbwarden's web-session store and the maintenance around it: a
//! tower-sessions store with throttled activity writes and version-guarded
//! saves, batched cleanup with one runner at a time, analytics and database
//! maintenance, for SQLite, PostgreSQL, MySQL / MariaDB and Redis.
