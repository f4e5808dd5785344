//! A stream written as an async block that hands values out one at a time.
//!
//! The pool's `fetch_many` must own a checked-out connection and stream rows
//! borrowed from it; an async block can hold both, and this turns it into a
//! `Stream` (the same technique as sqlx's internal `try_stream!`).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_util::FutureExt;

/// Hands one value to the consumer of a [`Generator`].
#[derive(Debug)]
pub(crate) struct Yielder<T> {
    slot: Arc<Mutex<Option<T>>>,
}

impl<T> Yielder<T> {
    /// Passes `value` out and suspends until the consumer has taken it.
    pub(crate) async fn send(&self, value: T) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        let mut suspended = false;
        poll_fn(|_| {
            if suspended {
                Poll::Ready(())
            } else {
                suspended = true;
                Poll::Pending
            }
        })
        .await;
    }
}

/// A stream driven by a future that emits values through a [`Yielder`].
pub(crate) struct Generator<'a, T> {
    slot: Arc<Mutex<Option<T>>>,
    future: Option<BoxFuture<'a, Result<(), sqlx::Error>>>,
}

impl<'a, T: Send + 'a> Generator<'a, T> {
    /// Runs `body` as the stream's producer.
    pub(crate) fn new<F, Fut>(body: F) -> Self
    where
        F: FnOnce(Yielder<T>) -> Fut,
        Fut: Future<Output = Result<(), sqlx::Error>> + Send + 'a,
    {
        let slot = Arc::new(Mutex::new(None));
        let future = body(Yielder { slot: Arc::clone(&slot) }).boxed();
        Generator { slot, future: Some(future) }
    }
}

impl<T> Stream for Generator<'_, T> {
    type Item = Result<T, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(None);
        };
        match future.poll_unpin(cx) {
            Poll::Ready(result) => {
                self.future = None;
                Poll::Ready(result.err().map(Err))
            }
            Poll::Pending => {
                let value = self.slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                // A value means the producer suspended only to hand it out: it
                // is ready to run again as soon as we are polled.
                value.map_or(Poll::Pending, |v| Poll::Ready(Some(Ok(v))))
            }
        }
    }
}

impl<T> std::fmt::Debug for Generator<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").field("finished", &self.future.is_none()).finish()
    }
}
