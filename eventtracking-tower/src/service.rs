//! [`TrackingContextService`]: the service made by [`TrackingContextLayer`](crate::TrackingContextLayer).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use eventtracking_core::context::{self, ContextSnapshot};
use eventtracking_core::default_tracker;
use http::{Request, Response};
use serde::Serialize;
use tower_service::Service;

use crate::layer::LayerConfig;

/// Runs each request of its inner service in a task-local context of its
/// own; made by [`TrackingContextLayer`](crate::TrackingContextLayer).
///
/// `poll_ready` is the inner service's. `call` takes the inner service that
/// was made ready, leaves a clone in its place (a clone may not be ready
/// yet), and returns a future that calls it inside the request's context.
#[derive(Clone)]
pub struct TrackingContextService<S> {
    inner: S,
    config: Arc<LayerConfig>,
}

impl<S> TrackingContextService<S> {
    pub(crate) fn new(inner: S, config: Arc<LayerConfig>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for TrackingContextService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackingContextService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TrackingContextService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let (mut parts, body) = request.into_parts();
        let (fields, request_id) = self.config.request_context(&mut parts);
        let request = Request::from_parts(parts, body);

        // The ready service goes into the future; its clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let stack = if config.inherit_contexts {
            ContextSnapshot::current()
        } else {
            ContextSnapshot::default()
        };
        let future = stack.scope(async move {
            // Inside the scope: this pushes onto the request's own task-local stack.
            context::enter_context(&config.context_name, fields);
            let mut completion = Completion {
                config: &config,
                start,
                done: false,
            };
            let result = inner.call(request).await;
            let status = match &result {
                Ok(response) => Some(response.status().as_u16()),
                Err(_) => None,
            };
            completion.finish(status, result.is_err());
            let mut result = result;
            if config.request_id_in_response {
                if let Ok(response) = &mut result {
                    response
                        .headers_mut()
                        .entry(config.request_id_header.clone())
                        .or_insert(request_id);
                }
            }
            result
        });
        ResponseFuture {
            inner: Box::pin(future),
        }
    }
}

/// Emits the request event when the request ends, or when its future is
/// dropped first (`"cancelled": true`). Dropped inside the context scope,
/// so a cancelled request's event still carries the request context.
struct Completion<'a> {
    config: &'a LayerConfig,
    start: Instant,
    done: bool,
}

#[derive(Serialize)]
struct RequestEvent {
    status: Option<u16>,
    latency_ms: f64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    error: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cancelled: bool,
}

impl Completion<'_> {
    fn finish(&mut self, status: Option<u16>, error: bool) {
        self.done = true;
        self.emit(status, error, false);
    }

    fn emit(&self, status: Option<u16>, error: bool, cancelled: bool) {
        let Some(name) = &self.config.request_event else {
            return;
        };
        let micros = self.start.elapsed().as_micros();
        let data = RequestEvent {
            status,
            latency_ms: micros as f64 / 1000.0,
            error,
            cancelled,
        };
        let result = match &self.config.tracker {
            Some(tracker) => tracker.emit(name, &data),
            None => default_tracker().emit(name, &data),
        };
        if let Err(error) = result {
            let previous = self
                .config
                .counters
                .request_event_errors
                .fetch_add(1, Relaxed);
            if previous == 0 {
                tracing::warn!(%error, "eventtracking: request event refused (warned once; see TrackingContextLayer::stats)");
            }
        }
    }
}

impl Drop for Completion<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.emit(None, false, true);
        }
    }
}

/// The response future of [`TrackingContextService`]: the inner future,
/// boxed together with the request's context scope.
pub struct ResponseFuture<T, E> {
    inner: Pin<Box<dyn Future<Output = Result<T, E>> + Send>>,
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
