//! The collector's outer middleware: CORS and the request metrics, as one
//! tower layer. (Two `axum::middleware::from_fn` layers cloned a boxed
//! service and boxed a future each, per request.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::cors::{Cors, Decision};
use crate::metrics::route_index;
use crate::Shared;

/// Answers preflights, marks responses for allowed origins, and times and
/// counts every request by route and status.
#[derive(Debug, Clone)]
pub(crate) struct Outer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cors: Arc<Cors>,
}

impl<S> Layer<S> for Outer {
    type Service = OuterService<S>;

    fn layer(&self, inner: S) -> OuterService<S> {
        OuterService {
            outer: self.clone(),
            inner,
        }
    }
}

/// [`Outer`] around a service.
#[derive(Debug, Clone)]
pub(crate) struct OuterService<S> {
    outer: Outer,
    inner: S,
}

impl<S> Service<Request> for OuterService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = OuterFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = route_index(request.uri().path());
        let start = Instant::now();
        let (decision, answered) = self.outer.cors.decide(&request);
        let state = match answered {
            Some(response) => State::Answered {
                response: Some(response),
            },
            None => State::Inner {
                future: self.inner.call(request),
            },
        };
        OuterFuture {
            state,
            finish: Some(Finish {
                outer: self.outer.clone(),
                decision,
                route,
                start,
            }),
        }
    }
}

/// What is done to the response once it is ready.
struct Finish {
    outer: Outer,
    decision: Decision,
    route: usize,
    start: Instant,
}

pin_project! {
    /// The response of [`OuterService`].
    pub(crate) struct OuterFuture<F> {
        #[pin]
        state: State<F>,
        finish: Option<Finish>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        Answered { response: Option<Response> },
        Inner { #[pin] future: F },
    }
}

impl<F, E> Future for OuterFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.state.project() {
            StateProjection::Answered { response } => response.take().unwrap_or_default(),
            StateProjection::Inner { future } => match future.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(response)) => response,
            },
        };
        if let Some(finish) = this.finish.take() {
            let Finish {
                outer,
                decision,
                route,
                start,
            } = finish;
            outer.cors.finish(decision, &mut response);
            outer.shared.metrics.count_request(
                route,
                response.status(),
                start.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(Ok(response))
    }
}
