//! sqlx's `Executor` for the monitored pool, connection and transaction:
//! every statement is timed (execution only: the pool wait is recorded as
//! the checkout's, not the statement's), its rows counted and its outcome
//! classified, then handed to [`Monitor::record_query`] with the SQL text,
//! which the core fingerprints. The text itself is never logged here.
//!
//! Timing starts when the statement's future or stream is first polled and
//! ends when it resolves, when the stream yields its last item or an error,
//! or when it is dropped early (then it counts as a success with the rows
//! seen so far). A statement that is never polled is not recorded.
//!
//! A statement run with `&pool` checks a connection out for itself alone
//! (`StatementCheckout`): its timing starts when that checkout does (the
//! statement is sent right after) and its end is the check-in, so the clock
//! is read once per boundary and the checkout, its session and the statement
//! are recorded by two calls ([`Monitor::open_statement_checkout`], which
//! only tracks the live checkout, and [`Monitor::close_statement_checkout`],
//! which for a statement that succeeded in time only appends it to the
//! core's buffer). Its fingerprint is looked up when it is sent
//! ([`Monitor::prepare`]), so its text is not kept. A statement dropped
//! early still records both, separately.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dbwarden_core::{ErrorClass, Monitor, Outcome};
use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::error::BoxDynError;
use sqlx::{Database, Either, Execute, Executor, SqlStr};

use crate::checkout::{StatementCheckout, current_holder};
use crate::classify::classify;
use crate::connection::MonitoredConnection;
use crate::database::MonitoredDatabase;
use crate::generator::Generator;
use crate::pool::MonitoredPool;
use crate::transaction::MonitoredTransaction;

/// A query taken apart so that its SQL text can be kept for recording while
/// the driver still gets everything it needs.
pub(crate) struct Captured<DB: Database> {
    pub(crate) sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<DB: Database> Captured<DB> {
    pub(crate) fn capture<'q, E: Execute<'q, DB>>(mut query: E) -> Self {
        let arguments = Some(query.take_arguments());
        let persistent = query.persistent();
        let statement = query.statement().cloned();
        let sql = query.sql();
        Captured { sql, statement, arguments, persistent }
    }
}

impl<DB: Database> Execute<'_, DB> for Captured<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Times one statement and records it once.
pub(crate) struct QueryRecorder<'m> {
    monitor: &'m Monitor,
    sql: SqlStr,
    started: Option<Instant>,
    pub(crate) returned: u64,
    pub(crate) affected: u64,
    error: Option<(ErrorClass, String)>,
    done: bool,
}

impl<'m> QueryRecorder<'m> {
    pub(crate) fn new(monitor: &'m Monitor, sql: SqlStr) -> Self {
        QueryRecorder { monitor, sql, started: None, returned: 0, affected: 0, error: None, done: false }
    }

    fn begin(&mut self) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }

    /// Starts the timing at `at`, a moment already read from the clock.
    pub(crate) fn begin_at(&mut self, at: Instant) {
        self.started = Some(at);
    }

    pub(crate) fn fail(&mut self, error: &sqlx::Error) {
        self.error = Some((classify(error), error.to_string()));
    }

    fn finish(&mut self) {
        self.finish_timed();
    }

    /// Records the statement once, as ended now; returns how long it ran
    /// (`None` when it was already recorded or never started).
    pub(crate) fn finish_timed(&mut self) -> Option<Duration> {
        if self.done {
            return None;
        }
        self.done = true;
        let duration = self.started?.elapsed();
        let outcome = match &self.error {
            None => Outcome::Success,
            Some((class, message)) => Outcome::Failure { class: *class, message },
        };
        self.monitor.record_query(self.sql.as_str(), duration, statement_rows(self.returned, self.affected), outcome);
        Some(duration)
    }
}

/// A statement's row count from the rows it returned and those it reports
/// affected: PostgreSQL reports a SELECT's rows as affected too, so the
/// larger rather than the sum.
pub(crate) fn statement_rows(returned: u64, affected: u64) -> u64 {
    returned.max(affected)
}

impl Drop for QueryRecorder<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

type Step<DB> = Either<<DB as Database>::QueryResult, <DB as Database>::Row>;

/// A `fetch_many` stream that records its statement when it ends.
struct RecordedStream<'e, DB: MonitoredDatabase> {
    inner: BoxStream<'e, Result<Step<DB>, sqlx::Error>>,
    recorder: QueryRecorder<'e>,
}

impl<DB: MonitoredDatabase> Stream for RecordedStream<'_, DB> {
    type Item = Result<Step<DB>, sqlx::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.recorder.done {
            return Poll::Ready(None);
        }
        this.recorder.begin();
        let polled = this.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(Either::Left(result)))) => this.recorder.affected += DB::rows_affected(result),
            Poll::Ready(Some(Ok(Either::Right(_)))) => this.recorder.returned += 1,
            Poll::Ready(Some(Err(error))) => {
                this.recorder.fail(error);
                this.recorder.finish();
            }
            Poll::Ready(None) => this.recorder.finish(),
        }
        polled
    }
}

/// `fetch_many` on a driver connection, recorded.
fn fetch_many_on<'e, 'q: 'e, DB, E>(
    conn: &'e mut DB::Connection,
    monitor: &'e Monitor,
    query: E,
) -> BoxStream<'e, Result<Step<DB>, sqlx::Error>>
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    E: 'q + Execute<'q, DB>,
{
    let captured = Captured::<DB>::capture(query);
    let recorder = QueryRecorder::new(monitor, captured.sql.clone());
    let inner = conn.fetch_many(captured);
    Box::pin(RecordedStream::<DB> { inner, recorder })
}

/// `fetch_optional` on a driver connection, recorded; also returns how long
/// the statement ran. Timed from `started` when the caller already read the
/// clock at that moment, else from the first poll. Not boxed, so the pool's
/// executor can await it inside its own (one) boxed future.
pub(crate) async fn fetch_optional_on<'e, 'q: 'e, DB, E>(
    conn: &'e mut DB::Connection,
    monitor: &'e Monitor,
    query: E,
    started: Option<Instant>,
) -> (Result<Option<DB::Row>, sqlx::Error>, Duration)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    E: 'q + Execute<'q, DB>,
{
    let captured = Captured::<DB>::capture(query);
    let mut recorder = QueryRecorder::new(monitor, captured.sql.clone());
    let inner = conn.fetch_optional(captured);
    recorder.begin_at(started.unwrap_or_else(Instant::now));
    let result = inner.await;
    match &result {
        Ok(row) => recorder.returned = u64::from(row.is_some()),
        Err(error) => recorder.fail(error),
    }
    let ran = recorder.finish_timed().unwrap_or_default();
    (result, ran)
}

impl<'p, DB> Executor<'p> for &'_ MonitoredPool<DB>
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Step<DB>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        Box::pin(Generator::new(move |out| async move {
            // As `fetch_optional_checked_out`: one checkout for this one
            // statement, recorded with it when the stream ends.
            let (mut conn, info, checked_out_at) = pool.checkout().await?;
            let monitor = pool.monitor();
            let captured = Captured::<DB>::capture(query);
            // Declared before `conn`: the connection goes back first.
            let mut checkout =
                StatementCheckout::start(monitor, current_holder(), captured.sql.as_str(), info.wait, checked_out_at);
            let mut steps = (&mut *conn).fetch_many(captured);
            let ended = loop {
                match steps.try_next().await {
                    Ok(Some(step)) => {
                        match &step {
                            Either::Left(result) => checkout.affected += DB::rows_affected(result),
                            Either::Right(_) => checkout.returned += 1,
                        }
                        out.send(step).await;
                    }
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(error),
                }
            };
            drop(steps);
            drop(conn);
            checkout.finish(ended.as_ref().err());
            ended
        }))
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        Box::pin(self.clone().fetch_optional_checked_out(query))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        let holder = current_holder();
        Box::pin(async move {
            let mut conn = pool.acquire_as(holder).await?;
            let (raw, _) = conn.parts();
            raw.prepare_with(sql, parameters).await
        })
    }
}

/// Implements `Executor` for `&mut` a monitored connection or transaction
/// of one backend.
///
/// The impls are per backend, not generic over `DB`: a generic
/// `impl Executor for &mut MonitoredConnection<DB> where &mut DB::Connection:
/// Executor` sends the trait solver into a loop whenever a caller is itself
/// generic over the database (it tries to unify `DB::Connection` with
/// `MonitoredConnection<_>`), the same reason sqlx has no impl for
/// `&mut PoolConnection`.
macro_rules! checkout_executor {
    ($ty:ident, $db:ty) => {
        impl<'c> Executor<'c> for &'c mut $ty<$db> {
            type Database = $db;

            fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Step<$db>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, $db>,
            {
                let (raw, checkout) = self.parts();
                checkout.touch();
                fetch_many_on::<$db, E>(raw, checkout.monitor(), query)
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<<$db as Database>::Row>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, $db>,
            {
                let (raw, checkout) = self.parts();
                checkout.touch();
                let monitor = checkout.monitor();
                Box::pin(async move { fetch_optional_on::<$db, E>(raw, monitor, query, None).await.0 })
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [<$db as Database>::TypeInfo],
            ) -> BoxFuture<'e, Result<<$db as Database>::Statement, sqlx::Error>>
            where
                'c: 'e,
            {
                let (raw, checkout) = self.parts();
                checkout.touch();
                raw.prepare_with(sql, parameters)
            }
        }
    };
}

/// Implements the executors of both wrappers for each backend.
macro_rules! backend_executors {
    ($($db:ty),*) => {
        $(
            checkout_executor!(MonitoredConnection, $db);
            checkout_executor!(MonitoredTransaction, $db);
        )*
    };
}

backend_executors!(sqlx::Postgres, sqlx::MySql, sqlx::Sqlite);
