//! Naming units of work: the counterpart of decorators that time a function
//! and attribute its queries and errors to an operation name.
//!
//! ```no_run
//! # async fn demo(pool: dbwarden_sqlx::MonitoredPool<sqlx::Postgres>) -> Result<(), sqlx::Error> {
//! use dbwarden_sqlx::OperationExt;
//!
//! let monitor = pool.monitor().clone();
//! let user: (i64,) = async {
//!     sqlx::query_as("SELECT id FROM users WHERE email = $1").bind("a@example.com").fetch_one(&pool).await
//! }
//! .operation(&monitor, "find_user_by_email")
//! .await?;
//! # let _ = user; Ok(()) }
//! ```
//!
//! Every statement the future runs (through any monitored pool, connection
//! or transaction) counts toward the operation's database time and statement
//! count, and its errors name the operation; when the future resolves, the
//! operation's call, duration and outcome are recorded
//! ([`dbwarden_core::Monitor::operations`]). A future dropped before it
//! resolves (cancelled, timed out by its caller) is not recorded: it has no
//! outcome to report.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use dbwarden_core::context::{OperationContext, WithContext, with_operation};
use dbwarden_core::{ErrorClass, Monitor};

use crate::classify::classify;

/// An error that can say which [`ErrorClass`] it belongs to, so a failed
/// operation is counted by class.
pub trait ClassifyError {
    /// The error's class.
    fn error_class(&self) -> ErrorClass;
}

impl ClassifyError for sqlx::Error {
    fn error_class(&self) -> ErrorClass {
        classify(self)
    }
}

/// Runs a future as a named operation; see the module documentation.
pub trait OperationExt: Future + Sized {
    /// Records this future as one call of the operation `name` in `monitor`.
    fn operation(self, monitor: &Monitor, name: impl Into<String>) -> Operation<Self>;
}

impl<F, T, E> OperationExt for F
where
    F: Future<Output = Result<T, E>>,
    E: ClassifyError,
{
    fn operation(self, monitor: &Monitor, name: impl Into<String>) -> Operation<Self> {
        let context = OperationContext::new(name);
        Operation {
            monitor: monitor.clone(),
            context: Arc::clone(&context),
            inner: with_operation(context, self),
            started: None,
        }
    }
}

/// A future running as a named operation, from [`OperationExt::operation`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Operation<F> {
    monitor: Monitor,
    context: Arc<OperationContext>,
    inner: WithContext<F>,
    started: Option<Instant>,
}

impl<F, T, E> Future for Operation<F>
where
    F: Future<Output = Result<T, E>>,
    E: ClassifyError,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(output) => {
                let failure = output.as_ref().err().map(ClassifyError::error_class);
                this.monitor.record_operation(&this.context, started.elapsed(), failure);
                Poll::Ready(output)
            }
        }
    }
}
