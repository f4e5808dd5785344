//! Session analytics on real SQLite, PostgreSQL and MariaDB: exact counts
//! and buckets over seeded rows, snapshots and trends, security findings,
//! and the health report on dbwarden's table and on a Django table.

mod seed;

use dbwarden_core::Timestamp;
use dbwarden_sessions::Backend;
use dbwarden_sessions::analytics::{
    self, HealthOptions, HealthStatus, SecurityOptions, Severity, health_report, overview, security, take_snapshot,
    trends,
};
use dbwarden_sessions::maintenance::create_indexes;
use dbwarden_sessions::store::UnknownIdBucket;
use seed::{DAY, DbwardenTable, DjangoTable, HOUR, MINUTE, NOW, RailsTable, Session, exec, now};

async fn seed_overview(t: &DbwardenTable) {
    // Live sessions, one per age and idle bucket; u1 has three, u2 one, one anonymous.
    t.insert(Session::live(1, Some("u1"), 30 * MINUTE, 2 * MINUTE)).await;
    t.insert(Session::live(2, Some("u1"), 5 * HOUR, 10 * MINUTE)).await;
    t.insert(Session::live(3, Some("u1"), 3 * DAY, 30 * MINUTE)).await;
    t.insert(Session::live(4, Some("u2"), 10 * DAY, 5 * HOUR)).await;
    t.insert(Session::live(5, None, 40 * DAY, 2 * DAY)).await;
    // Expired rows: counted in total and creation series, not in the distributions.
    t.insert(Session::expired(6, Some("u3"), 2 * HOUR, HOUR)).await;
    t.insert(Session::expired(7, None, 50 * HOUR, 10 * MINUTE)).await;
}

async fn check_overview(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    seed_overview(&t).await;
    let o = overview(&t.db, &t.table, now(), 10).await.expect("overview");
    assert_eq!((o.total, o.active, o.expired), (7, 5, 2));
    assert!((o.expired_fraction - 2.0 / 7.0).abs() < 1e-9);
    let counts = |b: &Option<Vec<analytics::Bucket>>| -> Vec<(String, i64)> {
        b.as_ref().expect("distribution").iter().map(|b| (b.label.to_owned(), b.count)).collect()
    };
    assert_eq!(
        counts(&o.age_distribution),
        [("<1h", 1), ("1h-24h", 1), ("1d-7d", 1), ("7d-30d", 1), (">30d", 1)].map(|(l, c)| (l.to_owned(), c)).to_vec()
    );
    assert_eq!(
        counts(&o.idle_distribution),
        [("<5m", 1), ("5m-15m", 1), ("15m-1h", 1), ("1h-24h", 1), (">24h", 1)].map(|(l, c)| (l.to_owned(), c)).to_vec()
    );
    let users = o.users.as_ref().expect("users");
    assert_eq!(users.users_with_sessions, 2);
    assert_eq!(users.anonymous_sessions, 1);
    let top: Vec<(&str, i64)> = users.top.iter().map(|u| (u.user_id.as_str(), u.sessions)).collect();
    assert_eq!(top, [("u1", 3), ("u2", 1)]);

    // Hourly: the current hour (12:00) holds row 1, 10:00 row 6, 07:00 row 2.
    let hourly = o.created_per_hour.as_ref().expect("hourly");
    assert_eq!(hourly.len(), 48);
    assert_eq!(hourly[47].start_ms, NOW - 30 * MINUTE);
    assert_eq!(hourly[47].start, "2025-06-16T12:00:00.000Z");
    let nonzero: Vec<(usize, i64)> =
        hourly.iter().enumerate().filter(|(_, p)| p.count > 0).map(|(i, p)| (i, p.count)).collect();
    assert_eq!(nonzero, [(42, 1), (45, 1), (47, 1)]);
    // Daily: today rows 1, 2, 6; two days ago row 7; three days ago row 3; ten days ago row 4.
    let daily = o.created_per_day.as_ref().expect("daily");
    assert_eq!(daily.len(), 30);
    assert_eq!(daily[29].start, "2025-06-16T00:00:00.000Z");
    let nonzero: Vec<(usize, i64)> =
        daily.iter().enumerate().filter(|(_, p)| p.count > 0).map(|(i, p)| (i, p.count)).collect();
    assert_eq!(nonzero, [(19, 1), (26, 1), (27, 1), (29, 3)]);
    assert!(o.unavailable.is_empty(), "{:?}", o.unavailable);

    let json = serde_json::to_value(&o).expect("json");
    for key in [
        "total",
        "active",
        "expired",
        "expired_fraction",
        "age_distribution",
        "idle_distribution",
        "users",
        "created_per_hour",
        "created_per_day",
        "unavailable",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    t.drop().await;
}

async fn check_snapshots_and_trends(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    let at = |ms: i64| Timestamp::from_millis(ms as u64);
    // Two days ago: 2 sessions; yesterday: 5 (one expired); today: 9, snapshot taken twice.
    for n in 0..2 {
        t.insert(Session::live(n, Some("u"), 3 * DAY, MINUTE)).await;
    }
    let first = take_snapshot(&t.db, &t.table, at(NOW - 2 * DAY)).await.expect("snapshot");
    assert_eq!((first.total, first.active, first.expired), (2, 2, 0));
    for n in 2..5 {
        t.insert(Session::live(n, Some("u"), HOUR, MINUTE)).await;
    }
    t.insert(Session::expired(5, None, 2 * DAY, 3 * DAY)).await;
    let second = take_snapshot(&t.db, &t.table, at(NOW - DAY)).await.expect("snapshot");
    assert_eq!((second.total, second.active, second.expired), (6, 5, 1));
    take_snapshot(&t.db, &t.table, at(NOW - HOUR)).await.expect("snapshot");
    for n in 6..9 {
        t.insert(Session::live(n, Some("u"), HOUR, MINUTE)).await;
    }
    let last = take_snapshot(&t.db, &t.table, now()).await.expect("snapshot");
    assert_eq!((last.total, last.expired), (9, 1));

    let tr = trends(&t.db, &t.table, 7, now()).await.expect("trends");
    let points: Vec<(&str, i64, i64)> = tr.points.iter().map(|p| (p.day.as_str(), p.total, p.expired)).collect();
    assert_eq!(points, [("2025-06-14", 2, 0), ("2025-06-15", 6, 1), ("2025-06-16", 9, 1)]);
    let growth = tr.growth.expect("growth");
    assert!((growth.total_per_day - 3.5).abs() < 1e-9, "{growth:?}");
    assert!((growth.expired_per_day - 0.5).abs() < 1e-9);
    // A one-day window holds today's last snapshot only.
    let today = trends(&t.db, &t.table, 1, now()).await.expect("trends");
    assert_eq!(today.points.len(), 1);
    assert_eq!(today.points[0].total, 9);
    assert!(today.growth.is_none());
    assert!(matches!(trends(&t.db, &t.table, 0, now()).await, Err(analytics::AnalyticsError::InvalidDays { days: 0 })));
    exec(&t.db, &format!("DELETE FROM dbwarden_session_snapshots WHERE table_name = '{}'", t.name()), &[]).await;
    t.drop().await;
}

async fn check_security(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    // "heavy": 12 live sessions from 12 client IPs and one user agent.
    for n in 0..12 {
        t.insert(Session { ip: Some(1000 + n), ua: Some(7), ..Session::live(n, Some("heavy"), HOUR, MINUTE) }).await;
    }
    // "normal": 2 sessions from one client; "old": many IPs but outside the window.
    for n in 20..22 {
        t.insert(Session { ip: Some(5), ua: Some(5), ..Session::live(n, Some("normal"), HOUR, MINUTE) }).await;
    }
    for n in 30..38 {
        t.insert(Session { ip: Some(n), ..Session::live(n, Some("old"), 5 * DAY, 3 * DAY) }).await;
    }
    let history: Vec<UnknownIdBucket> = (0..30u64)
        .map(|m| UnknownIdBucket {
            minute: Timestamp::from_millis((NOW as u64 / 60_000 - 30 + m) * 60_000),
            count: if m == 20 { 400 } else { 1 },
        })
        .collect();
    let report = security(&t.db, &t.table, &history, &SecurityOptions::default(), now()).await.expect("security");
    let many: Vec<(&str, i64)> = report
        .users_with_many_sessions
        .as_ref()
        .expect("sessions")
        .iter()
        .map(|u| (u.user_id.as_str(), u.sessions))
        .collect();
    assert_eq!(many, [("heavy", 12)]);
    let clients = report.users_with_many_clients.as_ref().expect("clients");
    assert_eq!(clients.len(), 1);
    assert_eq!(
        (clients[0].user_id.as_str(), clients[0].sessions, clients[0].distinct_ips, clients[0].distinct_agents),
        ("heavy", 12, 12, 1)
    );
    assert_eq!(report.unknown_id_bursts.len(), 1);
    assert_eq!(report.unknown_id_bursts[0].count, 400);
    assert_eq!(report.unknown_id_baseline_per_minute, 1.0);
    let codes: Vec<&str> = report.findings.iter().map(|f| f.code).collect();
    assert_eq!(codes, ["many_sessions_per_user", "many_clients_per_user", "session_id_guessing"]);
    assert_eq!(report.status, HealthStatus::Critical);

    // With higher limits and a quiet history nothing is flagged.
    let lenient = SecurityOptions { max_sessions_per_user: 20, max_distinct_ips: 20, ..SecurityOptions::default() };
    let quiet = security(&t.db, &t.table, &history[..10], &lenient, now()).await.expect("security");
    assert!(quiet.findings.is_empty(), "{:?}", quiet.findings);
    assert_eq!(quiet.status, HealthStatus::Ok);
    t.drop().await;
}

async fn check_health_on_django(backend: Backend) {
    let t = DjangoTable::new(backend).await;
    for n in 0..20 {
        t.insert(&format!("expired{n}"), NOW - (n + 1) * HOUR).await;
    }
    for n in 0..10 {
        t.insert(&format!("live{n}"), NOW + (n + 1) * HOUR).await;
    }
    let report = health_report(&t.db, &t.table, &HealthOptions::default(), now()).await.expect("health");
    assert_eq!((report.counts.total, report.counts.expired, report.counts.active), (30, 20, 10));
    let find = |code: &str| report.findings.iter().find(|f| f.code == code);
    assert_eq!(find("missing_expiry_index").map(|f| f.severity), Some(Severity::Warn));
    // 20 of 30 expired: over half the table.
    assert_eq!(find("expired_backlog").map(|f| f.severity), Some(Severity::Critical));
    assert!(find("cleanup_not_run").is_some());
    assert_eq!(report.status, HealthStatus::Critical);

    // The Django table supports counts only: the rest says why it is missing.
    let o = overview(&t.db, &t.table, now(), 5).await.expect("overview");
    assert_eq!((o.total, o.expired), (30, 20));
    assert!(o.age_distribution.is_none() && o.users.is_none() && o.created_per_day.is_none());
    let parts: Vec<&str> = o.unavailable.iter().map(|u| u.part).collect();
    assert_eq!(parts, ["age_distribution", "idle_distribution", "users", "created_per_hour", "created_per_day"]);
    let sec = security(&t.db, &t.table, &[], &SecurityOptions::default(), now()).await.expect("security");
    assert!(sec.users_with_many_sessions.is_none() && sec.users_with_many_clients.is_none());

    create_indexes(&t.db, &t.table, false).await.expect("create indexes");
    let after = health_report(&t.db, &t.table, &HealthOptions::default(), now()).await.expect("health");
    assert!(after.findings.iter().all(|f| f.code != "missing_expiry_index"), "{:?}", after.findings);
    t.drop().await;
}

async fn check_health_on_dbwarden(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    for n in 0..5 {
        t.insert(Session::live(n, Some("u"), HOUR, MINUTE)).await;
    }
    let stats = dbwarden_sessions::StoreStats { touches: 10, writes_avoided: 990, ..Default::default() };
    let options = HealthOptions { store_stats: Some(stats), ..HealthOptions::default() };
    let report = health_report(&t.db, &t.table, &options, now()).await.expect("health");
    let codes: Vec<&str> = report.findings.iter().map(|f| f.code).collect();
    // Migrated tables have their indexes and no backlog; only cleanup has never run.
    assert_eq!(codes, ["throttle_interval", "cleanup_not_run"]);
    assert_eq!(report.status, HealthStatus::Warn);
    assert!(report.table_bytes.is_some());

    // A recent finished run clears it; an older one than twice the interval does not.
    let insert_run = |finished: i64| {
        format!(
            "INSERT INTO dbwarden_cleanup_runs (started_at, finished_at, table_name, mode, rows_removed, batches, errors, dry_run, host) \
             VALUES ({}, {finished}, '{}', 'expired', 3, 1, 0, FALSE, 'test')",
            finished - 1000,
            t.name()
        )
    };
    exec(&t.db, &insert_run(NOW - 3 * HOUR), &[]).await;
    let stale = health_report(&t.db, &t.table, &options, now()).await.expect("health");
    assert_eq!(stale.last_cleanup_ms, Some(NOW - 3 * HOUR));
    assert!(stale.findings.iter().any(|f| f.code == "cleanup_not_run"));
    exec(&t.db, &insert_run(NOW - 10 * MINUTE), &[]).await;
    let fresh = health_report(&t.db, &t.table, &options, now()).await.expect("health");
    assert_eq!(fresh.status, HealthStatus::Ok, "{:?}", fresh.findings);

    // A backlog over 1000 rows.
    for n in 100..1111u64 {
        t.insert(Session::expired(n, None, DAY, HOUR)).await;
    }
    let backlog = health_report(&t.db, &t.table, &options, now()).await.expect("health");
    let finding = backlog.findings.iter().find(|f| f.code == "expired_backlog").expect("backlog finding");
    assert!(finding.message.starts_with("1011 expired sessions"), "{}", finding.message);
    exec(&t.db, &format!("DELETE FROM dbwarden_cleanup_runs WHERE table_name = '{}'", t.name()), &[]).await;
    t.drop().await;
}

async fn check_overview_on_rails(backend: Backend) {
    // Date-time columns and expiry by 30 days of idleness.
    let t = RailsTable::new(backend).await;
    t.insert("a", NOW - 30 * MINUTE, NOW - 2 * MINUTE, "x").await;
    t.insert("b", NOW - 5 * HOUR, NOW - 10 * MINUTE, "x").await;
    t.insert("c", NOW - 40 * DAY, NOW - 31 * DAY, "x").await;
    t.insert("d", NOW - 3 * DAY, NOW - 2 * DAY, "x").await;
    let o = overview(&t.db, &t.table, now(), 10).await.expect("overview");
    assert_eq!((o.total, o.active, o.expired), (4, 3, 1));
    let counts = |b: &Option<Vec<analytics::Bucket>>| -> Vec<i64> {
        b.as_ref().expect("distribution").iter().map(|b| b.count).collect()
    };
    assert_eq!(counts(&o.age_distribution), [1, 1, 1, 0, 0]);
    assert_eq!(counts(&o.idle_distribution), [1, 1, 0, 0, 1]);
    let nonzero = |points: &Option<Vec<analytics::TimePoint>>| -> Vec<(usize, i64)> {
        points
            .as_ref()
            .expect("series")
            .iter()
            .enumerate()
            .filter(|(_, p)| p.count > 0)
            .map(|(i, p)| (i, p.count))
            .collect()
    };
    assert_eq!(nonzero(&o.created_per_hour), [(42, 1), (47, 1)]);
    assert_eq!(nonzero(&o.created_per_day), [(26, 1), (29, 2)]);
    let parts: Vec<&str> = o.unavailable.iter().map(|u| u.part).collect();
    assert_eq!(parts, ["users"]);
    t.drop().await;
}

async fn check_health_growth_and_size(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    for n in 0..5 {
        t.insert(Session::live(n, Some("u"), HOUR, MINUTE)).await;
    }
    // Snapshots a day apart whose sizes grew by 39 MiB; a cleanup ran lately.
    let mib = 1024 * 1024;
    for (taken, bytes) in [(NOW - 2 * DAY, mib), (NOW - DAY, 40 * mib)] {
        exec(
            &t.db,
            &format!(
                "INSERT INTO dbwarden_session_snapshots (taken_at, table_name, total, active, expired, table_bytes) \
                 VALUES ({taken}, '{}', 5, 5, 0, {bytes})",
                t.name()
            ),
            &[],
        )
        .await;
    }
    exec(
        &t.db,
        &format!(
            "INSERT INTO dbwarden_cleanup_runs (started_at, finished_at, table_name, mode, rows_removed, batches, \
             errors, dry_run, host) VALUES ({}, {}, '{}', 'expired', 0, 0, 0, FALSE, 'test')",
            NOW - 2 * MINUTE,
            NOW - MINUTE,
            t.name()
        ),
        &[],
    )
    .await;
    let options = HealthOptions { max_table_bytes: 1, ..HealthOptions::default() };
    let report = health_report(&t.db, &t.table, &options, now()).await.expect("health");
    let found: Vec<(&str, Severity)> = report.findings.iter().map(|f| (f.code, f.severity)).collect();
    assert_eq!(found, [("table_size", Severity::Critical), ("table_growth", Severity::Warn)]);
    let growth = report.findings.iter().find(|f| f.code == "table_growth").expect("growth");
    assert!(growth.message.contains("39.0 MiB a day"), "{}", growth.message);
    assert_eq!(report.status, HealthStatus::Critical);
    // With the default limits the table is small and steady enough.
    exec(
        &t.db,
        &format!("UPDATE dbwarden_session_snapshots SET table_bytes = {mib} WHERE table_name = '{}'", t.name()),
        &[],
    )
    .await;
    let calm = health_report(&t.db, &t.table, &HealthOptions::default(), now()).await.expect("health");
    assert!(calm.findings.is_empty(), "{:?}", calm.findings);
    exec(&t.db, &format!("DELETE FROM dbwarden_session_snapshots WHERE table_name = '{}'", t.name()), &[]).await;
    exec(&t.db, &format!("DELETE FROM dbwarden_cleanup_runs WHERE table_name = '{}'", t.name()), &[]).await;
    t.drop().await;
}

seed::support::on_every_backend!(
    check_overview,
    check_overview_on_rails,
    check_snapshots_and_trends,
    check_security,
    check_health_on_django,
    check_health_on_dbwarden,
    check_health_growth_and_size
);
