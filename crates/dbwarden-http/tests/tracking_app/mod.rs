//! A small instrumented axum application on a monitored SQLite pool, shared
//! by the request-tracking tests, the browser test and the tracking
//! benchmark: routes with path parameters, a nested router, an N+1 route, a
//! slow route, a failing route, a route that never answers and one that
//! panics.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use dbwarden_core::Monitor;
use dbwarden_core::context::current_request;
use dbwarden_sqlx::MonitoredPool;
use serde_json::{Value, json};
use sqlx::{Row, Sqlite};
use tokio::sync::Notify;

/// How many books each author has: the N+1 route runs one statement per book.
pub const BOOKS_PER_AUTHOR: i64 = 6;

/// The application's state.
#[derive(Clone)]
pub struct AppState {
    pub pool: MonitoredPool<Sqlite>,
    pub monitor: Monitor,
    /// Notified when a request reaches `/hang/{id}`.
    pub hanging: Arc<Notify>,
}

/// The application and what a test needs to look inside it.
pub struct App {
    pub state: AppState,
    _dir: tempfile::TempDir,
}

impl App {
    /// A fresh database in a temporary directory with authors and books, and
    /// a monitored pool of `max` connections recording into `monitor`.
    pub async fn new(monitor: Monitor, max: u32) -> App {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("app.db")).create_if_missing(true);
        let pool = MonitoredPool::builder(
            sqlx::sqlite::SqlitePoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(5)),
            monitor.clone(),
        )
        .connect_with(options)
        .await
        .expect("open the SQLite pool");
        for sql in [
            "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            "CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, title TEXT NOT NULL)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect("create the schema");
        }
        for author in 1..=3_i64 {
            sqlx::query("INSERT INTO authors (id, name) VALUES (?, ?)")
                .bind(author)
                .bind(format!("author {author}"))
                .execute(&pool)
                .await
                .expect("insert an author");
            for book in 0..BOOKS_PER_AUTHOR {
                sqlx::query("INSERT INTO books (author_id, title) VALUES (?, ?)")
                    .bind(author)
                    .bind(format!("book {book}"))
                    .execute(&pool)
                    .await
                    .expect("insert a book");
            }
        }
        App { state: AppState { pool, monitor, hanging: Arc::new(Notify::new()) }, _dir: dir }
    }

    /// The routes, without the tracking layer.
    pub fn routes(&self) -> Router {
        let api = Router::new().route("/items/{item_id}", get(item));
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/authors/{id}", get(author))
            .route("/authors/{id}/books", get(books_n_plus_one))
            .route("/authors/{id}/books/joined", get(books_joined))
            .route("/orders/{id}", get(order_holding_a_checkout))
            .route("/slow", get(slow))
            .route("/reports/{id}", get(report_holding_a_connection))
            .route("/fail", get(fail))
            .route("/hang/{id}", get(hang))
            .route("/panic", get(panics))
            .nest("/api", api)
            .with_state(self.state.clone())
    }
}

/// What the request context said at the end of a handler.
fn context_json() -> Value {
    let ctx = current_request();
    json!({
        "request_id": ctx.as_ref().map(|c| c.request_id().to_owned()),
        "route": ctx.as_ref().map(|c| c.route().to_owned()),
        "db_queries": ctx.as_ref().map(|c| c.db_queries()),
        "db_time_ns": ctx.as_ref().map(|c| c.db_time().as_nanos() as u64),
    })
}

fn internal(error: sqlx::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

async fn author(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Json<Value>, (StatusCode, String)> {
    let row = sqlx::query("SELECT name FROM authors WHERE id = ?")
        .bind(id)
        .fetch_optional(&s.pool)
        .await
        .map_err(internal)?;
    match row {
        Some(row) => {
            let name: String = row.get(0);
            let mut body = context_json();
            body["name"] = json!(name);
            Ok(Json(body))
        }
        None => Err((StatusCode::NOT_FOUND, format!("no author {id}"))),
    }
}

/// The N+1 pattern: one statement for the list, then one per book.
async fn books_n_plus_one(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Json<Value>, (StatusCode, String)> {
    let books = sqlx::query("SELECT id, author_id FROM books WHERE author_id = ?")
        .bind(id)
        .fetch_all(&s.pool)
        .await
        .map_err(internal)?;
    let mut titles = Vec::new();
    for book in books {
        let book_id: i64 = book.get(0);
        let row = sqlx::query("SELECT title FROM books WHERE id = ?")
            .bind(book_id)
            .fetch_one(&s.pool)
            .await
            .map_err(internal)?;
        titles.push(row.get::<String, _>(0));
    }
    let mut body = context_json();
    body["titles"] = json!(titles);
    Ok(Json(body))
}

/// The same data in one statement.
async fn books_joined(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Json<Value>, (StatusCode, String)> {
    let rows = sqlx::query("SELECT title FROM books WHERE author_id = ? ORDER BY id")
        .bind(id)
        .fetch_all(&s.pool)
        .await
        .map_err(internal)?;
    let mut body = context_json();
    body["titles"] = json!(rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>());
    Ok(Json(body))
}

/// Holds a checkout while it looks at the monitor's live checkout list and
/// reports who the monitor says holds it.
async fn order_holding_a_checkout(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let mut conn = s.pool.acquire().await.map_err(internal)?;
    sqlx::query("SELECT count(*) FROM books WHERE author_id = ?")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .map_err(internal)?;
    sqlx::query("SELECT name FROM authors WHERE id = ?").bind(id).fetch_optional(&mut conn).await.map_err(internal)?;
    let mine = current_request().map(|c| c.request_id().to_owned());
    let holders: Vec<Value> = s
        .monitor
        .checkouts()
        .into_iter()
        .filter(|c| c.holder.request_id.is_some() && c.holder.request_id == mine)
        .map(|c| json!({ "request_id": c.holder.request_id, "route": c.holder.route }))
        .collect();
    drop(conn);
    let mut body = context_json();
    body["holders"] = json!(holders);
    Ok(Json(body))
}

#[derive(serde::Deserialize)]
struct SlowParams {
    ms: Option<u64>,
}

async fn slow(State(s): State<AppState>, Query(p): Query<SlowParams>) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(p.ms.unwrap_or(50).min(60_000))).await;
    let _ = sqlx::query("SELECT count(*) FROM books").fetch_one(&s.pool).await;
    Json(context_json())
}

/// Holds a connection while it "builds a report" for `ms` milliseconds, so
/// the checkout shows in the live list.
async fn report_holding_a_connection(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    Query(p): Query<SlowParams>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let mut conn = s.pool.acquire().await.map_err(internal)?;
    sqlx::query("SELECT count(*) FROM books WHERE author_id = ?")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .map_err(internal)?;
    tokio::time::sleep(Duration::from_millis(p.ms.unwrap_or(500).min(60_000))).await;
    sqlx::query("SELECT name FROM authors WHERE id = ?").bind(id).fetch_optional(&mut conn).await.map_err(internal)?;
    Ok(Json(context_json()))
}

async fn fail(State(s): State<AppState>) -> (StatusCode, String) {
    match sqlx::query("SELECT * FROM no_such_table WHERE id = 1").fetch_all(&s.pool).await {
        Ok(_) => (StatusCode::OK, "unexpectedly fine".into()),
        Err(e) => internal(e),
    }
}

/// Signals that it started, then never answers: the client has to give up.
async fn hang(State(s): State<AppState>, Path(_id): Path<u32>) -> &'static str {
    let _ = sqlx::query("SELECT 1").fetch_one(&s.pool).await;
    s.hanging.notify_one();
    std::future::pending::<()>().await;
    "unreachable"
}

async fn panics() -> &'static str {
    panic!("the handler panicked on purpose")
}

async fn item(State(s): State<AppState>, Path(item_id): Path<i64>) -> Json<Value> {
    let _ = sqlx::query("SELECT title FROM books WHERE id = ?").bind(item_id).fetch_optional(&s.pool).await;
    Json(context_json())
}

/// Serves `router` on a fresh loopback port; returns its address.
pub async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    addr
}
