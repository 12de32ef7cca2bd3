//! [`TrackingContextService`]: the service made by [`TrackingContextLayer`](crate::TrackingContextLayer).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use eventtracking_core::context::{self, ContextSnapshot};
use eventtracking_core::JsonMap;
use eventtracking_engine::default_tracker;
use http::{HeaderValue, Request, Response};
use serde::Serialize;
use tower_service::Service;

use crate::layer::LayerConfig;
use crate::recycle;

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
        // The clock is read only when a request event will report latency.
        let start = self.config.request_event.is_some().then(Instant::now);
        let (mut parts, body) = request.into_parts();
        let map = self.config.context_map();
        let (fields, request_id) = self.config.request_context(&mut parts, map);
        let request = Request::from_parts(parts, body);

        // The ready service goes into the future; its clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let stack = if self.config.inherit_contexts {
            ContextSnapshot::current()
        } else {
            // A clone of one empty stack: `ContextSnapshot::default()` allocates.
            self.config.empty_stack.clone()
        };
        let future = RequestFuture {
            state: State::Start {
                inner,
                request,
                fields,
            },
            request_id: Some(request_id),
            completion: Completion {
                config: self.config.clone(),
                start,
                armed: false,
            },
            recycled: Recycled(None),
        };
        // One allocation per request: the scope future is opaque (an `async
        // fn` of core), so it is boxed. `RequestFuture` is written by hand
        // rather than as an `async` block to keep the box small (an `async`
        // block keeps its captures beside the inner future's state, and the
        // scope doubles it): under glibc's per-thread cache limit of about
        // 1 KiB, where malloc and free are cheapest.
        ResponseFuture {
            inner: Box::pin(stack.scope(future)),
        }
    }
}

pin_project_lite::pin_project! {
    /// Calls the inner service on its first poll, inside the request's
    /// context scope: entering the context there puts it on the request's
    /// own task-local stack, so even the inner `call` sees it.
    struct RequestFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
        request_id: Option<HeaderValue>,
        completion: Completion,
        // Last: dropped after the request event is emitted.
        recycled: Recycled,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Start {
            inner: S,
            request: Request<ReqBody>,
            fields: JsonMap,
        },
        Running {
            #[pin]
            future: S::Future,
        },
        Done,
    }
}

impl<S, ReqBody, ResBody> Future for RequestFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Start { .. } => {
                    let StateReplace::Start {
                        mut inner,
                        request,
                        fields,
                    } = this.state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was Start")
                    };
                    let config = &this.completion.config;
                    // Inside the scope: this pushes onto the request's own task-local stack.
                    context::enter_context(&config.context_name, fields);
                    if config.recycle_contexts {
                        // Alone on a new stack, the frame's map is the merge.
                        this.recycled.0 = Some(context::current());
                    }
                    this.completion.armed = config.request_event.is_some();
                    let future = inner.call(request);
                    this.state.set(State::Running { future });
                }
                StateProj::Running { future } => {
                    let mut result = ready!(future.poll(cx));
                    this.state.project_replace(State::Done);
                    let completion = &mut this.completion;
                    if completion.armed {
                        let status = match &result {
                            Ok(response) => Some(response.status().as_u16()),
                            Err(_) => None,
                        };
                        completion.armed = false;
                        completion.emit(status, result.is_err(), false);
                    }
                    if completion.config.request_id_in_response {
                        if let (Ok(response), Some(id)) = (&mut result, this.request_id.take()) {
                            response
                                .headers_mut()
                                .entry(completion.config.request_id_header.clone())
                                .or_insert(id);
                        }
                    }
                    return Poll::Ready(result);
                }
                StateProj::Done => {
                    panic!("TrackingContextService's future polled after completion")
                }
            }
        }
    }
}

/// Hands the request's context map to this thread's pool when the request
/// ends (see [`recycle`](crate::recycle)).
struct Recycled(Option<Arc<JsonMap>>);

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Some(map) = self.0.take() {
            recycle::give_back(map);
        }
    }
}

/// Emits the request event when the request ends, or when its future is
/// dropped first (`"cancelled": true`). Dropped inside the context scope,
/// so a cancelled request's event still carries the request context.
/// Armed only while the inner service runs, when a request event is set.
struct Completion {
    config: Arc<LayerConfig>,
    start: Option<Instant>,
    armed: bool,
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

impl Completion {
    fn emit(&self, status: Option<u16>, error: bool, cancelled: bool) {
        let Some(name) = &self.config.request_event else {
            return;
        };
        let micros = self.start.map_or(0, |start| start.elapsed().as_micros());
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

impl Drop for Completion {
    fn drop(&mut self) {
        if self.armed {
            self.emit(None, false, true);
        }
    }
}

/// The response future of [`TrackingContextService`]: the request's future,
/// boxed together with its context scope.
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
