//! A one-shot answer gathered from several routes: each route fills its
//! part once, and the waiter (a future, or a blocking wait for sync code)
//! gets every part when the last one arrives. Receipts and flushes both use
//! it. A part dropped without an answer gives [`Unanswered::unanswered`], so
//! a waiter is never left hanging by a lost handle.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use eventtracking_core::sync::lock;

/// What a part says when it is dropped without an answer.
pub(crate) trait Unanswered {
    fn unanswered() -> Self;
}

struct State<T> {
    parts: Vec<(Arc<str>, T)>,
    remaining: usize,
    waker: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    filled: Condvar,
}

/// The waiting side.
pub(crate) struct Gathered<T> {
    shared: Arc<Shared<T>>,
}

/// One route's side: answers once, by [`Part::fill`] or, dropped unanswered,
/// with [`Unanswered::unanswered`].
pub(crate) struct Part<T: Unanswered> {
    shared: Option<Arc<Shared<T>>>,
    route: Arc<str>,
}

impl<T> std::fmt::Debug for Gathered<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remaining = lock(&self.shared.state).remaining;
        f.debug_struct("Gathered")
            .field("remaining", &remaining)
            .finish()
    }
}

impl<T: Unanswered> std::fmt::Debug for Part<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part").field("route", &self.route).finish()
    }
}

/// An answer already complete: `parts` and nothing to wait for.
pub(crate) fn ready<T>(parts: Vec<(Arc<str>, T)>) -> Gathered<T> {
    Gathered {
        shared: Arc::new(Shared {
            state: Mutex::new(State {
                parts,
                remaining: 0,
                waker: None,
            }),
            filled: Condvar::new(),
        }),
    }
}

/// A waiter and one part for each route, in order.
pub(crate) fn gather<T: Unanswered>(
    routes: impl ExactSizeIterator<Item = Arc<str>>,
) -> (Gathered<T>, Vec<Part<T>>) {
    let count = routes.len();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            parts: Vec::with_capacity(count),
            remaining: count,
            waker: None,
        }),
        filled: Condvar::new(),
    });
    let parts = routes
        .map(|route| Part {
            shared: Some(shared.clone()),
            route,
        })
        .collect();
    (Gathered { shared }, parts)
}

impl<T: Unanswered> Part<T> {
    pub(crate) fn fill(mut self, answer: T) {
        self.answer(answer);
    }

    fn answer(&mut self, answer: T) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let waker = {
            let mut state = lock(&shared.state);
            state.parts.push((self.route.clone(), answer));
            state.remaining -= 1;
            if state.remaining > 0 {
                return;
            }
            state.waker.take()
        };
        shared.filled.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T: Unanswered> Drop for Part<T> {
    fn drop(&mut self) {
        if self.shared.is_some() {
            self.answer(T::unanswered());
        }
    }
}

impl<T> Gathered<T> {
    fn take_if_done(state: &mut State<T>) -> Option<Vec<(Arc<str>, T)>> {
        (state.remaining == 0).then(|| std::mem::take(&mut state.parts))
    }

    /// Whether every part has answered.
    pub(crate) fn is_done(&self) -> bool {
        lock(&self.shared.state).remaining == 0
    }

    /// The parts answered so far (after a wait timed out).
    pub(crate) fn take_answered(&mut self) -> Vec<(Arc<str>, T)> {
        std::mem::take(&mut lock(&self.shared.state).parts)
    }

    /// Blocks until every part answered, or `timeout` passed (`None`; the
    /// answer can still be awaited later).
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<Vec<(Arc<str>, T)>> {
        let deadline = crate::delivery::deadline_after(timeout);
        let mut state = lock(&self.shared.state);
        loop {
            if let Some(parts) = Self::take_if_done(&mut state) {
                return Some(parts);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .shared
                .filled
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl<T> Future for Gathered<T> {
    type Output = Vec<(Arc<str>, T)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.shared.state);
        match Self::take_if_done(&mut state) {
            Some(parts) => Poll::Ready(parts),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
