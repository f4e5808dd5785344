//! Run with: `DBWARDEN_ADMIN_TOKEN=change-me-to-a-long-secret cargo run -p dbwarden --example embed_router`
//!
//! Embedding dbwarden into one's own axum application: the pool becomes a
//! `MonitoredPool` (one changed line), the `RequestTrackingLayer` wraps the
//! application's routes, and dbwarden's router (dashboard, JSON API,
//! health, `/metrics`) is nested under `/admin/dbwarden`. A driver keeps the
//! monitor ticking. Then open http://127.0.0.1:3000/admin/dbwarden/ and
//! call http://127.0.0.1:3000/users/1.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use dbwarden::{Driver, DriverConfig, Monitor, MonitorConfig};
use dbwarden_http::{AdminConfig, AdminToken, AppState, ProbeError, ReadinessProbe, RequestTrackingLayer};
use dbwarden_sqlx::MonitoredPool;
use sqlx::Sqlite;
use sqlx::sqlite::SqlitePoolOptions;

/// `/readyz` of the nested router: the application's database answers.
#[derive(Debug)]
struct DatabaseReady(MonitoredPool<Sqlite>);

#[async_trait::async_trait]
impl ReadinessProbe for DatabaseReady {
    async fn check(&self) -> Result<(), ProbeError> {
        sqlx::query("SELECT 1").execute(self.0.inner()).await.map(drop).map_err(|e| ProbeError(e.to_string()))
    }
}

async fn user(State(pool): State<MonitoredPool<Sqlite>>, Path(id): Path<i64>) -> Result<String, StatusCode> {
    // Application code is unchanged: the monitored pool is an sqlx executor.
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(&pool)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    name.ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let monitor = Monitor::builder().config(MonitorConfig::named("app")).build()?;
    // The one changed line: `SqlitePoolOptions::new().connect(..)` becomes this.
    let pool = MonitoredPool::builder(SqlitePoolOptions::new().max_connections(4), monitor.clone())
        .connect("sqlite::memory:")
        .await?;
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&pool).await?;
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace')").execute(&pool).await?;
    let sampler = pool.spawn_sampler(Duration::from_secs(5))?;
    let driver = Driver::spawn(monitor.clone(), DriverConfig::default());

    let token = AdminToken::new(std::env::var("DBWARDEN_ADMIN_TOKEN")?)?;
    let admin = AppState::builder(monitor.clone(), AdminConfig::new(token))
        .readiness_probe(DatabaseReady(pool.clone()))
        .build()?;
    let app = Router::new()
        .route("/users/{id}", get(user))
        .with_state(pool.clone())
        .layer(RequestTrackingLayer::new(monitor.clone()))
        .nest("/admin/dbwarden", dbwarden_http::router(admin));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("application on http://127.0.0.1:3000/users/1, dbwarden on http://127.0.0.1:3000/admin/dbwarden/");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    sampler.stop();
    driver.shutdown().await;
    Ok(())
}
