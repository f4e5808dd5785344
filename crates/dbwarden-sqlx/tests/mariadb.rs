//! The monitored pool against a real MariaDB / MySQL server
//! (`DBWARDEN_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`).
//! Each test works in its own database, dropped at the end. A server that
//! cannot be reached fails the test.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::MyDb as Db;

server_backend_tests!(
    queries_are_fingerprinted(4),
    checkout_is_a_session(4),
    transactions_are_counted(4),
    errors_are_classified(4),
    pool_exhaustion_is_a_pool_timeout(1),
    dropped_stream_is_recorded(4),
    sampler_records_samples(4),
    requests_and_operations_are_attributed(4),
    error_rates_per_class_and_patterns(4),
);
