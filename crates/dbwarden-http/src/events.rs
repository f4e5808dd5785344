//! `GET /api/events`: the monitor's [`Event`]s as server-sent events.
//!
//! An [`EventSink`] subscribed to the monitor forwards each event into a
//! bounded tokio broadcast channel. Sending never blocks and costs nothing
//! while no stream is open; a client that falls behind skips the events it
//! missed (it is told how many with a `lagged` event) and never slows the
//! monitor down.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use dbwarden_core::{Event, EventSink, Monitor};
use futures_util::Stream;
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::state::AppState;

/// The sink the monitor pushes to.
#[derive(Debug)]
struct BroadcastSink {
    sender: broadcast::Sender<Event>,
    generation: Arc<AtomicU64>,
}

impl EventSink for BroadcastSink {
    fn on_event(&self, event: &Event) {
        if matches!(event, Event::Tick { .. }) {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        if self.sender.receiver_count() > 0 {
            // An error only means every receiver left meanwhile.
            let _ = self.sender.send(event.clone());
        }
    }
}

/// The event channel, the stream count and the tick generation.
#[derive(Debug)]
pub(crate) struct EventHub {
    sink: Arc<dyn EventSink>,
    sender: broadcast::Sender<Event>,
    generation: Arc<AtomicU64>,
    open_streams: Arc<AtomicUsize>,
    max_streams: usize,
    /// Set to true to end every open stream (server shutdown).
    closing: tokio::sync::watch::Sender<bool>,
}

impl EventHub {
    pub(crate) fn attach(monitor: &Monitor, buffer: usize, max_streams: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer.max(1));
        let generation = Arc::new(AtomicU64::new(0));
        let sink: Arc<dyn EventSink> =
            Arc::new(BroadcastSink { sender: sender.clone(), generation: generation.clone() });
        monitor.subscribe(sink.clone());
        let (closing, _) = tokio::sync::watch::channel(false);
        EventHub { sink, sender, generation, open_streams: Arc::new(AtomicUsize::new(0)), max_streams, closing }
    }

    pub(crate) fn detach(&self, monitor: &Monitor) {
        monitor.unsubscribe(&self.sink);
    }

    pub(crate) fn generation(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    /// Ends every open stream and refuses new ones.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// Counts an open stream until dropped.
#[derive(Debug)]
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn to_sse(event: &Event) -> SseEvent {
    let value = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
    let name = value.get("event").and_then(|v| v.as_str()).unwrap_or("event").to_owned();
    SseEvent::default().event(name).data(value.to_string())
}

/// `GET /api/events`.
pub(crate) async fn stream(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let hub = &state.inner.events;
    let open = hub.open_streams.fetch_add(1, Ordering::AcqRel) + 1;
    let slot = StreamSlot(hub.open_streams.clone());
    if open > hub.max_streams {
        return Err(ApiError::Unavailable(format!(
            "{} event streams are open already; try again later",
            hub.max_streams
        )));
    }
    let mut closing = hub.closing.subscribe();
    if *closing.borrow_and_update() {
        return Err(ApiError::Unavailable("the server is shutting down".into()));
    }
    let receiver = hub.sender.subscribe();
    let hello = SseEvent::default()
        .event("ready")
        .data(serde_json::json!({ "event": "ready", "at": state.inner.monitor.now() }).to_string());
    let events =
        futures_util::stream::unfold((receiver, closing, slot), |(mut receiver, mut closing, slot)| async move {
            let received = tokio::select! {
                received = receiver.recv() => received,
                // Shutdown (or the state being dropped) ends the stream, so a
                // graceful shutdown does not wait for clients that never leave.
                _ = closing.wait_for(|closed| *closed) => return None,
            };
            let item = match received {
                Ok(event) => to_sse(&event),
                Err(broadcast::error::RecvError::Lagged(skipped)) => SseEvent::default()
                    .event("lagged")
                    .data(serde_json::json!({ "event": "lagged", "skipped": skipped }).to_string()),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(item), (receiver, closing, slot)))
        });
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter([Ok(hello)]), events);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
