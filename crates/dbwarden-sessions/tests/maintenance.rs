//! Database maintenance on real SQLite, PostgreSQL and MariaDB: sizes and
//! dead space, idempotent index creation (and a dry run that changes
//! nothing), optimize, and an integrity check that finds planted rows.

mod seed;

use dbwarden_sessions::Backend;
use dbwarden_sessions::maintenance::{analyze, create_indexes, integrity_check, optimize, optimize_statements, stats};
use seed::{DAY, DbwardenTable, DjangoTable, HOUR, MINUTE, NOW, RailsTable, Session, exec, now};

async fn check_analyze_and_stats(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    for n in 0..40 {
        t.insert(Session::live(n, Some("u"), HOUR, MINUTE)).await;
    }
    for n in 40..50 {
        t.insert(Session::expired(n, None, DAY, HOUR)).await;
    }
    let report = analyze(&t.db, &t.table).await.expect("analyze");
    assert_eq!(report.rows, 50);
    let names: Vec<&str> = report.indexes.iter().map(|i| i.name.as_str()).collect();
    assert!(names.contains(&t.schema.expires_index().as_str()), "{names:?}");
    assert!(names.contains(&t.schema.user_index().as_str()), "{names:?}");
    assert!(report.indexes.iter().any(|i| i.unique && i.columns == ["id_hash"]), "{:?}", report.indexes);
    assert!(report.sizes.table_bytes.is_some_and(|b| b > 0), "{report:?}");
    assert!(report.sizes.index_bytes.is_some_and(|b| b > 0), "{report:?}");
    match backend {
        Backend::Postgres => assert!(report.dead_tuples.is_some(), "{report:?}"),
        Backend::MySql | Backend::Sqlite => assert!(report.reclaimable_bytes.is_some(), "{report:?}"),
    }

    let s = stats(&t.db, &t.table, now()).await.expect("stats");
    assert_eq!((s.counts.total, s.counts.active, s.counts.expired), (50, 40, 10));
    assert!(s.missing_indexes.is_empty(), "{:?}", s.missing_indexes);
    assert_eq!(s.last_cleanup, None);
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["storage"]["rows"], 50);
    assert!(json["storage"].get("table_bytes").is_some());
    t.drop().await;
}

async fn index_names(t: &DjangoTable) -> Vec<String> {
    let mut names: Vec<String> =
        analyze(&t.db, &t.table).await.expect("analyze").indexes.into_iter().map(|i| i.name).collect();
    names.sort();
    names
}

async fn check_create_indexes(backend: Backend) {
    let t = DjangoTable::new(backend).await;
    t.insert("a", NOW + HOUR).await;
    let before = index_names(&t).await;

    let plan = create_indexes(&t.db, &t.table, true).await.expect("dry run");
    assert!(plan.dry_run);
    assert_eq!(plan.created.len(), 1);
    assert_eq!(plan.created[0].column, "expire_date");
    assert!(plan.created[0].statements.last().is_some_and(|s| s.contains("CREATE INDEX")), "{plan:?}");
    assert_eq!(index_names(&t).await, before, "a dry run created an index");

    let first = create_indexes(&t.db, &t.table, false).await.expect("create");
    assert_eq!(first.created.len(), 1);
    assert!(first.already_present.is_empty());
    let after = index_names(&t).await;
    assert_eq!(after.len(), before.len() + 1);
    assert!(after.contains(&first.created[0].index), "{after:?}");

    let second = create_indexes(&t.db, &t.table, false).await.expect("create again");
    assert!(second.created.is_empty(), "{second:?}");
    assert_eq!(second.already_present.len(), 1);
    assert_eq!(second.already_present[0].index, first.created[0].index);
    assert_eq!(index_names(&t).await, after);
    t.drop().await;
}

async fn check_dbwarden_indexes_present(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    let report = create_indexes(&t.db, &t.table, false).await.expect("create");
    assert!(report.created.is_empty());
    let present: Vec<(&str, &str)> =
        report.already_present.iter().map(|i| (i.column.as_str(), i.index.as_str())).collect();
    let (expires, user) = (t.schema.expires_index(), t.schema.user_index());
    assert_eq!(present, [("expires_at", expires.as_str()), ("user_id", user.as_str())]);
    t.drop().await;
}

async fn check_optimize(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    for n in 0..30 {
        t.insert(Session::live(n, Some("u"), HOUR, MINUTE)).await;
    }
    exec(&t.db, &format!("DELETE FROM {} WHERE user_id = 'u' AND created_at < {}", t.name(), NOW), &[]).await;
    let dry = optimize(&t.db, &t.table, true).await.expect("dry run");
    assert_eq!(dry.statements, optimize_statements(&t.table));
    assert!(dry.outcomes.is_empty() && dry.bytes_after.is_none());
    let report = optimize(&t.db, &t.table, false).await.expect("optimize");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.outcomes.len(), report.statements.len());
    assert!(report.outcomes.iter().all(|o| o.ok));
    let first = &report.statements[0];
    match backend {
        Backend::Postgres => assert!(first.starts_with("VACUUM (ANALYZE)")),
        Backend::MySql => assert!(first.starts_with("OPTIMIZE TABLE")),
        Backend::Sqlite => assert_eq!(first, "VACUUM"),
    }
    t.drop().await;
}

async fn check_integrity(backend: Backend) {
    let t = DbwardenTable::new(backend).await;
    for n in 0..5 {
        t.insert(Session::live(n, Some("u"), HOUR, MINUTE)).await;
    }
    let clean = integrity_check(&t.db, &t.table).await.expect("check");
    assert!(clean.ok, "{clean:?}");
    assert_eq!(clean.inconsistent_rows, 0);
    let codes: Vec<&str> = clean.consistency.iter().map(|c| c.code).collect();
    assert_eq!(
        codes,
        ["expires_before_created", "last_seen_before_created", "absolute_expiry_before_expiry", "empty_data"]
    );
    match backend {
        Backend::Postgres => assert!(clean.engine_check.is_none()),
        _ => assert!(clean.engine_check.as_ref().is_some_and(|e| e.ok), "{:?}", clean.engine_check),
    }

    // One planted row per rule.
    let base = Session::live(10, Some("bad"), HOUR, MINUTE);
    t.insert(Session { expires: base.created - MINUTE, absolute: Some(base.created + HOUR), ..base }).await;
    t.insert(Session { n: 11, seen: base.created - MINUTE, ..base }).await;
    t.insert(Session { n: 12, absolute: Some(base.expires - MINUTE), ..base }).await;
    t.insert(Session { n: 13, data: Some(b""), ..base }).await;
    let report = integrity_check(&t.db, &t.table).await.expect("check");
    assert!(!report.ok);
    let counts: Vec<(&str, i64)> = report.consistency.iter().map(|c| (c.code, c.count)).collect();
    assert_eq!(
        counts,
        [
            ("expires_before_created", 1),
            ("last_seen_before_created", 1),
            ("absolute_expiry_before_expiry", 1),
            ("empty_data", 1)
        ]
    );
    assert_eq!(report.inconsistent_rows, 4);
    t.drop().await;
}

async fn check_integrity_on_django(backend: Backend) {
    let t = DjangoTable::new(backend).await;
    t.insert("a", NOW + HOUR).await;
    let report = integrity_check(&t.db, &t.table).await.expect("check");
    assert!(report.ok, "{report:?}");
    let codes: Vec<&str> = report.consistency.iter().map(|c| c.code).collect();
    assert_eq!(codes, ["empty_data"]);
    let missing: Vec<&str> = report.unavailable.iter().map(|u| u.part).collect();
    assert!(missing.contains(&"expires_before_created") && missing.contains(&"absolute_expiry_before_expiry"));
    exec(&t.db, &format!("UPDATE {} SET session_data = ''", t.name), &[]).await;
    let report = integrity_check(&t.db, &t.table).await.expect("check");
    assert!(!report.ok);
    assert_eq!(report.inconsistent_rows, 1);
    t.drop().await;
}

async fn check_integrity_on_rails(backend: Backend) {
    let t = RailsTable::new(backend).await;
    t.insert("good", NOW - HOUR, NOW - MINUTE, "x").await;
    t.insert("seen_first", NOW - HOUR, NOW - 2 * HOUR, "x").await;
    t.insert("empty", NOW - HOUR, NOW, "").await;
    let report = integrity_check(&t.db, &t.table).await.expect("check");
    let counts: Vec<(&str, i64)> = report.consistency.iter().map(|c| (c.code, c.count)).collect();
    assert_eq!(counts, [("last_seen_before_created", 1), ("empty_data", 1)]);
    assert!(!report.ok);
    let missing: Vec<&str> = report.unavailable.iter().map(|u| u.part).collect();
    assert!(missing.contains(&"expires_before_created"), "{missing:?}");
    t.drop().await;
}

seed::support::on_every_backend!(
    check_analyze_and_stats,
    check_create_indexes,
    check_dbwarden_indexes_present,
    check_optimize,
    check_integrity,
    check_integrity_on_django,
    check_integrity_on_rails
);
