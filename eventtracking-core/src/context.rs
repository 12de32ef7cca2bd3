//! Nested contexts: a stack per thread, or per tokio task inside [`in_context`]
//! or [`ContextSnapshot::scope`].
//!
//! Every event is stamped with the merge of the current stack: later (inner)
//! contexts win over earlier ones, and exiting an inner context restores the
//! outer values. Contexts are ambient: every tracker on the thread or task sees them.
//!
//! | form | use it for |
//! |---|---|
//! | [`enter_context`] / [`exit_context`] | the seed's imperative style |
//! | [`context`] (guard) / [`with_context`] (closure) | a scope in synchronous code |
//! | [`in_context`] | a scope around a future; survives `.await` on any worker thread, never seen by other tasks |
//! | [`ContextSnapshot`] | carrying the current contexts into `tokio::spawn` (with [`ContextSnapshot::scope`]) or a new thread |

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::ContextError;
use crate::event::JsonMap;

mod map_pool;
pub use map_pool::MapPool;

#[derive(Debug, Clone)]
struct Frame {
    id: u64,
    name: Arc<str>,
    values: Arc<JsonMap>,
    /// The merge of the frames below this one: what popping it restores.
    below: Arc<JsonMap>,
}

/// A stack of named contexts and their cached merge.
#[derive(Debug, Clone, Default)]
struct ContextStack {
    frames: Vec<Frame>,
    merged: Arc<JsonMap>,
    recent: RecentPushes,
}

/// The last few pushes: code that enters the same contexts again and again
/// (a loop, a job per item) gets the same shared maps back instead of new
/// copies, so each merge is computed once and consecutive events share their
/// context map (which delivery threads then serialize once).
#[derive(Debug, Clone, Default)]
struct RecentPushes {
    entries: [Option<RecentPush>; RECENT_PUSHES],
    next: usize,
}

const RECENT_PUSHES: usize = 4;
/// Contexts with more keys than this are not compared against recent pushes.
const MAX_RECENT_KEYS: usize = 16;

#[derive(Debug, Clone)]
struct RecentPush {
    name: Arc<str>,
    below: Arc<JsonMap>,
    values: Arc<JsonMap>,
    merged: Arc<JsonMap>,
}

impl RecentPushes {
    fn find(&self, name: &str, below: &Arc<JsonMap>, values: &JsonMap) -> Option<&RecentPush> {
        if values.len() > MAX_RECENT_KEYS {
            return None;
        }
        // The cheap tests first: the same merge below (a pointer), then
        // the name, then the values.
        self.entries.iter().flatten().find(|recent| {
            (Arc::ptr_eq(&recent.below, below) || (recent.below.is_empty() && below.is_empty()))
                && *recent.name == *name
                && same_entries(&recent.values, values)
        })
    }

    fn remember(&mut self, push: RecentPush) {
        if push.values.len() > MAX_RECENT_KEYS {
            return;
        }
        self.entries[self.next] = Some(push);
        self.next = (self.next + 1) % RECENT_PUSHES;
    }
}

/// The same keys with the same values in the same order: a walk of both
/// maps, cheaper than a map comparison (which looks each key up).
fn same_entries(a: &JsonMap, b: &JsonMap) -> bool {
    a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x == y)
}

/// The merge of `frames`, later frames winning.
fn merge(frames: &[Frame]) -> Arc<JsonMap> {
    match frames {
        [] => Arc::default(),
        // Alone, a frame is the merge: share it, don't copy it.
        [only] => only.values.clone(),
        [.., last] => merged_over(&last.below, &last.values),
    }
}

/// `below` with `values` written over it.
fn merged_over(below: &JsonMap, values: &Arc<JsonMap>) -> Arc<JsonMap> {
    if below.is_empty() {
        return values.clone();
    }
    let mut merged = JsonMap::with_capacity(below.len() + values.len());
    merged.extend(below.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    Arc::new(merged)
}

impl ContextStack {
    fn push(&mut self, name: &str, values: JsonMap) -> u64 {
        static NEXT_FRAME: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_FRAME.fetch_add(1, Ordering::Relaxed);
        let below = self.merged.clone();
        let frame = match self.recent.find(name, &below, &values) {
            Some(recent) => {
                self.merged = recent.merged.clone();
                Frame {
                    id,
                    name: recent.name.clone(),
                    values: recent.values.clone(),
                    below,
                }
            }
            None => {
                let values = Arc::new(values);
                let name: Arc<str> = Arc::from(name);
                self.merged = merged_over(&below, &values);
                self.recent.remember(RecentPush {
                    name: name.clone(),
                    below: below.clone(),
                    values: values.clone(),
                    merged: self.merged.clone(),
                });
                Frame {
                    id,
                    name,
                    values,
                    below,
                }
            }
        };
        self.frames.push(frame);
        id
    }

    /// Removes the innermost frame matching `pred`; false if none matched.
    fn remove_innermost(&mut self, pred: impl Fn(&Frame) -> bool) -> bool {
        let Some(index) = self.frames.iter().rposition(pred) else {
            return false;
        };
        let removed = self.frames.remove(index);
        if index == self.frames.len() {
            // The innermost frame: what was below it is the merge again.
            self.merged = removed.below;
        } else {
            // From the middle (rare): the frames above it are merged anew.
            for above in index..self.frames.len() {
                self.frames[above].below = merge(&self.frames[..above]);
            }
            self.merged = merge(&self.frames);
        }
        true
    }

    fn names(&self) -> Vec<String> {
        self.frames.iter().map(|f| f.name.to_string()).collect()
    }
}

thread_local! {
    /// The stack of the future being polled inside a [`Scoped`], if any:
    /// it is swapped in for each poll and out afterwards, so it follows its
    /// task from worker thread to worker thread on any executor.
    static TASK_CONTEXTS: RefCell<Option<ContextStack>> = const { RefCell::new(None) };
    static THREAD_CONTEXTS: RefCell<ContextStack> = RefCell::new(ContextStack::default());
}

/// Runs `f` on the current stack: the task's inside a context scope, else the thread's.
fn with_stack<R>(f: impl FnOnce(&mut ContextStack) -> R) -> Option<R> {
    let mut f = Some(f);
    let in_task = TASK_CONTEXTS.try_with(|cell| {
        let mut task = cell.try_borrow_mut().ok()?;
        let stack = task.as_mut()?;
        f.take().map(|f| f(stack))
    });
    if let Ok(Some(result)) = in_task {
        return Some(result);
    }
    THREAD_CONTEXTS
        .try_with(|cell| f.take().map(|f| f(&mut cell.borrow_mut())))
        .ok()
        .flatten()
}

pin_project_lite::pin_project! {
    /// A future running with its own context stack: see [`in_context`] and
    /// [`ContextSnapshot::scope`]. Its stack is current while it is polled
    /// and while it is dropped (a cancelled request's clean-up emits in its
    /// contexts too).
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Scoped<F> {
        stack: Option<ContextStack>,
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.is_some() {
                in_scope(this.stack, || this.future.set(None));
            }
        }
    }
}

impl<F> Scoped<F> {
    fn new(stack: ContextStack, future: F) -> Self {
        Scoped {
            stack: Some(stack),
            future: Some(future),
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        in_scope(this.stack, || match future.as_mut().as_pin_mut() {
            Some(future) => future.poll(cx),
            None => panic!("`Scoped` polled after it completed"),
        })
    }
}

/// Runs `f` with `stack` as the thread's task stack, then puts the stack
/// back in place and restores the outer one, even if `f` panics.
fn in_scope<R>(stack: &mut Option<ContextStack>, f: impl FnOnce() -> R) -> R {
    struct Swap<'a> {
        stack: &'a mut Option<ContextStack>,
        outer: Option<ContextStack>,
    }
    impl Drop for Swap<'_> {
        fn drop(&mut self) {
            let outer = self.outer.take();
            if let Ok(inner) = TASK_CONTEXTS.try_with(|cell| cell.replace(outer)) {
                *self.stack = inner;
            }
        }
    }
    let scoped = stack.take();
    let outer = TASK_CONTEXTS
        .try_with(|cell| cell.replace(scoped))
        .unwrap_or_default();
    let _swap = Swap { stack, outer };
    f()
}

/// The merge of every context currently entered (cheap: a shared map).
///
/// ```
/// use eventtracking_core::context;
/// use serde_json::json;
///
/// let _outer = context::context("outer", json!({"user_id": 1, "org": "a"})).unwrap();
/// let _inner = context::context("inner", json!({"user_id": 2})).unwrap();
/// assert_eq!(context::current()["user_id"], 2);
/// assert_eq!(context::current()["org"], "a");
/// ```
#[inline]
pub fn current() -> Arc<JsonMap> {
    with_stack(|stack| stack.merged.clone()).unwrap_or_default()
}

/// Pushes a named context; its keys win over those of contexts entered before it.
pub fn enter_context(name: &str, values: JsonMap) {
    with_stack(|stack| stack.push(name, values));
}

/// Pops the innermost context with this name, restoring outer values of its keys.
///
/// ```
/// use eventtracking_core::context::{current, enter_context, exit_context};
/// use serde_json::json;
///
/// let map = |v: serde_json::Value| v.as_object().unwrap().clone();
/// enter_context("request", map(json!({"user_id": 1})));
/// enter_context("request", map(json!({"user_id": 2})));
/// exit_context("request").unwrap();
/// assert_eq!(current()["user_id"], 1);
/// exit_context("request").unwrap();
/// assert!(exit_context("request").is_err());
/// ```
pub fn exit_context(name: &str) -> Result<(), ContextError> {
    with_stack(|stack| {
        if stack.remove_innermost(|f| &*f.name == name) {
            Ok(())
        } else {
            Err(ContextError::NotEntered {
                name: name.to_owned(),
                entered: stack.names(),
            })
        }
    })
    .unwrap_or_else(|| {
        Err(ContextError::NotEntered {
            name: name.to_owned(),
            entered: Vec::new(),
        })
    })
}

/// What a context can be made of: a JSON object, taken as it is.
///
/// An owned `serde_json::Value` (such as `json!({...})`) or [`JsonMap`] is
/// moved onto the stack without being copied or re-serialized; a reference
/// is cloned. Anything else `Serialize` goes through [`serialized`].
///
/// ```
/// use eventtracking_core::context::{self, serialized};
/// use serde_json::json;
///
/// #[derive(serde::Serialize)]
/// struct Request { user_id: u64 }
///
/// let _a = context::context("a", json!({"org": "edx"})).unwrap();
/// let _b = context::context("b", serialized(Request { user_id: 7 })).unwrap();
/// assert_eq!(context::current()["user_id"], 7);
/// assert!(context::context("c", json!([1, 2])).is_err());
/// ```
pub trait IntoContext {
    /// The context's map; `name` is the context's name, for the error.
    fn into_context_map(self, name: &str) -> Result<JsonMap, ContextError>;
}

impl IntoContext for JsonMap {
    fn into_context_map(self, _name: &str) -> Result<JsonMap, ContextError> {
        Ok(self)
    }
}

impl IntoContext for &JsonMap {
    fn into_context_map(self, _name: &str) -> Result<JsonMap, ContextError> {
        Ok(self.clone())
    }
}

impl IntoContext for serde_json::Value {
    fn into_context_map(self, name: &str) -> Result<JsonMap, ContextError> {
        match self {
            serde_json::Value::Object(map) => Ok(map),
            other => Err(not_an_object(name, &other)),
        }
    }
}

impl IntoContext for &serde_json::Value {
    fn into_context_map(self, name: &str) -> Result<JsonMap, ContextError> {
        match self {
            serde_json::Value::Object(map) => Ok(map.clone()),
            other => Err(not_an_object(name, other)),
        }
    }
}

/// A context made of any `Serialize` value that serializes to a map (a
/// struct, a `HashMap`...). See [`serialized`].
#[derive(Debug, Clone, Copy)]
pub struct Serialized<T>(pub T);

/// Wraps a `Serialize` value (a struct, a `HashMap`...) to be used as a context.
pub fn serialized<T: serde::Serialize>(values: T) -> Serialized<T> {
    Serialized(values)
}

impl<T: serde::Serialize> IntoContext for Serialized<T> {
    fn into_context_map(self, name: &str) -> Result<JsonMap, ContextError> {
        to_context_map(name, self.0)
    }
}

fn not_an_object(name: &str, value: &serde_json::Value) -> ContextError {
    ContextError::NotAnObject {
        name: name.to_owned(),
        kind: crate::event::json_kind(value),
    }
}

/// Converts any serializable value into a context map.
pub fn to_context_map(name: &str, values: impl serde::Serialize) -> Result<JsonMap, ContextError> {
    match serde_json::to_value(values) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(not_an_object(name, &other)),
        Err(_) => Err(ContextError::NotAnObject {
            name: name.to_owned(),
            kind: "a value serde_json cannot represent",
        }),
    }
}

/// Enters a context until the returned guard is dropped.
///
/// The guard is `!Send`: it belongs to the thread (or task scope) it was made
/// on. To keep a context across `.await` in a multi-threaded runtime use
/// [`in_context`]. Holding a guard across `.await` inside `tokio::spawn` does
/// not compile:
///
/// ```compile_fail
/// # async fn yield_now() {}
/// let task = async {
///     let _guard = eventtracking_core::context::context("a", serde_json::json!({"k": 1})).unwrap();
///     yield_now().await;
/// };
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(task);
/// ```
pub fn context(name: &str, values: impl IntoContext) -> Result<ContextGuard, ContextError> {
    let map = values.into_context_map(name)?;
    let frame = with_stack(|stack| stack.push(name, map));
    Ok(ContextGuard {
        frame,
        _not_send: PhantomData,
    })
}

/// Runs `f` inside a context, exiting it afterwards (even on panic).
pub fn with_context<R>(
    name: &str,
    values: impl IntoContext,
    f: impl FnOnce() -> R,
) -> Result<R, ContextError> {
    let _guard = context(name, values)?;
    Ok(f())
}

/// Runs a future inside the current contexts plus a new one, as a task-local
/// stack: it survives `.await` on any worker thread and is never seen by
/// other tasks.
///
/// ```
/// use eventtracking_core::context::{current, in_context};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let user = in_context("request", json!({"user_id": 7}), async {
///     tokio::task::yield_now().await;
///     current()["user_id"].clone()
/// })
/// .await
/// .unwrap();
/// assert_eq!(user, 7);
/// assert!(current().get("user_id").is_none());
/// # }
/// ```
pub async fn in_context<F: Future>(
    name: &str,
    values: impl IntoContext,
    future: F,
) -> Result<F::Output, ContextError> {
    let map = values.into_context_map(name)?;
    Ok(in_context_map(name, map, future).await)
}

/// [`in_context`] for a ready map (nothing to convert, so nothing can fail).
pub fn in_context_map<F: Future>(name: &str, values: JsonMap, future: F) -> Scoped<F> {
    let mut stack = ContextSnapshot::current().stack;
    stack.push(name, values);
    Scoped::new(stack, future)
}

/// Exits its context when dropped. See [`context`].
#[must_use = "the context is exited as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ContextGuard {
    frame: Option<u64>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        if let Some(frame) = self.frame {
            with_stack(|stack| stack.remove_innermost(|f| f.id == frame));
        }
    }
}

/// A copy of the current context stack, to carry into other tasks and threads.
///
/// ```
/// use eventtracking_core::context::{self, ContextSnapshot};
/// use serde_json::json;
///
/// let _ctx = context::context("job", json!({"job_id": 42})).unwrap();
/// let snapshot = ContextSnapshot::current();
/// std::thread::spawn(move || {
///     let _attached = snapshot.attach();
///     assert_eq!(context::current()["job_id"], 42);
/// })
/// .join()
/// .unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct ContextSnapshot {
    stack: ContextStack,
}

impl ContextSnapshot {
    /// The contexts of the current task or thread.
    pub fn current() -> Self {
        ContextSnapshot {
            stack: with_stack(|stack| stack.clone()).unwrap_or_default(),
        }
    }

    /// The merged values of this snapshot.
    pub fn merged(&self) -> &JsonMap {
        &self.stack.merged
    }

    /// Runs a future with this snapshot as its task-local context stack
    /// (e.g. `tokio::spawn(ContextSnapshot::current().scope(fut))`: a
    /// spawned task starts with no contexts otherwise).
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped::new(self.stack, future)
    }

    /// Makes this snapshot the current thread's stack until the guard drops,
    /// then restores what the thread had.
    pub fn attach(self) -> AttachGuard {
        let previous = THREAD_CONTEXTS
            .try_with(|cell| std::mem::replace(&mut *cell.borrow_mut(), self.stack))
            .ok();
        AttachGuard {
            previous,
            _not_send: PhantomData,
        }
    }
}

/// Restores a thread's previous contexts when dropped. See [`ContextSnapshot::attach`].
#[must_use = "the snapshot is detached as soon as the guard is dropped"]
#[derive(Debug)]
pub struct AttachGuard {
    previous: Option<ContextStack>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = THREAD_CONTEXTS.try_with(|cell| *cell.borrow_mut() = previous);
        }
    }
}
