#![allow(missing_docs, clippy::unwrap_used)]
use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    routing::get,
};
use dbwarden_core::Monitor;
use dbwarden_http::RequestTrackingLayer;
use dbwarden_sqlx::MonitoredPool;
use http::Request;
use sqlx::{Row, Sqlite};
use std::time::Instant;
use tower::{Service, ServiceExt};

async fn hello(Path(id): Path<u32>) -> String {
    format!("hello {id}")
}
async fn author(State(pool): State<MonitoredPool<Sqlite>>, Path(id): Path<i64>) -> String {
    let row = sqlx::query("SELECT name FROM authors WHERE id = ?").bind(id).fetch_one(&pool).await.unwrap();
    row.get::<String, _>(0)
}
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let monitor = Monitor::new();
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("b.db")).create_if_missing(true);
        let pool = MonitoredPool::builder(sqlx::sqlite::SqlitePoolOptions::new().max_connections(4), monitor.clone())
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO authors (id, name) VALUES (42, 'x')").execute(&pool).await.unwrap();
        let app = Router::new().route("/hello/{id}", get(hello)).route("/authors/{id}", get(author)).with_state(pool);
        let tracked = app.clone().layer(RequestTrackingLayer::new(monitor.clone()));
        for path in std::env::var("PATHS")
            .unwrap_or("/hello/42,/authors/42".into())
            .split(",")
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
        {
            for round in 0..3 {
                for (name, router) in [("bare", &app), ("tracked", &tracked)]
                    .into_iter()
                    .filter(|(n, _)| std::env::var("SIDE").map_or(true, |s| s == *n))
                {
                    let n = if path.starts_with("/hello") { 200_000 } else { 20_000 };
                    let mut svc = router.clone().into_service::<Body>();
                    let t = Instant::now();
                    for _ in 0..n {
                        let req = Request::get(path).body(Body::empty()).unwrap();
                        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
                        let _ = axum::body::to_bytes(resp.into_body(), 1000).await.unwrap();
                    }
                    println!("{path} {name} round {round}: {:.2} us/req", t.elapsed().as_secs_f64() * 1e6 / n as f64);
                }
            }
        }
    });
}
