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
//! | [`ContextSnapshot`] | carrying the current contexts into `tokio::spawn` or a new thread |

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::ContextError;
use crate::event::JsonMap;

#[derive(Debug, Clone)]
struct Frame {
    id: u64,
    name: Arc<str>,
    values: Arc<JsonMap>,
}

/// A stack of named contexts and their cached merge.
#[derive(Debug, Clone, Default)]
struct ContextStack {
    frames: Vec<Frame>,
    merged: Arc<JsonMap>,
}

impl ContextStack {
    fn push(&mut self, name: &str, values: JsonMap) -> u64 {
        static NEXT_FRAME: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_FRAME.fetch_add(1, Ordering::Relaxed);
        let values = Arc::new(values);
        if self.frames.is_empty() {
            // Alone on the stack, the frame is the merge: share it, don't copy it.
            self.merged = values.clone();
        } else {
            let merged = Arc::make_mut(&mut self.merged);
            for (key, value) in values.iter() {
                merged.insert(key.clone(), value.clone());
            }
        }
        self.frames.push(Frame {
            id,
            name: Arc::from(name),
            values,
        });
        id
    }

    /// Removes the innermost frame matching `pred`; false if none matched.
    fn remove_innermost(&mut self, pred: impl Fn(&Frame) -> bool) -> bool {
        let Some(index) = self.frames.iter().rposition(pred) else {
            return false;
        };
        self.frames.remove(index);
        self.merged = match self.frames.as_slice() {
            [] => Arc::default(),
            [only] => only.values.clone(),
            frames => {
                let mut merged = JsonMap::new();
                for frame in frames {
                    for (key, value) in frame.values.iter() {
                        merged.insert(key.clone(), value.clone());
                    }
                }
                Arc::new(merged)
            }
        };
        true
    }

    fn names(&self) -> Vec<String> {
        self.frames.iter().map(|f| f.name.to_string()).collect()
    }
}

tokio::task_local! {
    static TASK_CONTEXTS: RefCell<ContextStack>;
}

thread_local! {
    static THREAD_CONTEXTS: RefCell<ContextStack> = RefCell::new(ContextStack::default());
}

/// Runs `f` on the current stack: the task's inside a context scope, else the thread's.
fn with_stack<R>(f: impl FnOnce(&mut ContextStack) -> R) -> Option<R> {
    let mut f = Some(f);
    let in_task = TASK_CONTEXTS.try_with(|cell| f.take().map(|f| f(&mut cell.borrow_mut())));
    if let Ok(result) = in_task {
        return result;
    }
    THREAD_CONTEXTS
        .try_with(|cell| f.take().map(|f| f(&mut cell.borrow_mut())))
        .ok()
        .flatten()
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

/// Converts any serializable value into a context map.
pub fn to_context_map(name: &str, values: impl serde::Serialize) -> Result<JsonMap, ContextError> {
    match serde_json::to_value(values) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(ContextError::NotAnObject {
            name: name.to_owned(),
            kind: crate::event::json_kind(&other),
        }),
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
pub fn context(name: &str, values: impl serde::Serialize) -> Result<ContextGuard, ContextError> {
    let map = to_context_map(name, values)?;
    let frame = with_stack(|stack| stack.push(name, map));
    Ok(ContextGuard {
        frame,
        _not_send: PhantomData,
    })
}

/// Runs `f` inside a context, exiting it afterwards (even on panic).
pub fn with_context<R>(
    name: &str,
    values: impl serde::Serialize,
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
    values: impl serde::Serialize,
    future: F,
) -> Result<F::Output, ContextError> {
    let map = to_context_map(name, values)?;
    Ok(in_context_map(name, map, future).await)
}

/// [`in_context`] for a ready map (nothing to convert, so nothing can fail).
pub async fn in_context_map<F: Future>(name: &str, values: JsonMap, future: F) -> F::Output {
    let mut stack = ContextSnapshot::current().stack;
    stack.push(name, values);
    TASK_CONTEXTS.scope(RefCell::new(stack), future).await
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
    /// (e.g. `tokio::spawn(ContextSnapshot::current().scope(fut))`).
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        TASK_CONTEXTS.scope(RefCell::new(self.stack), future).await
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

/// Spawns a tokio task that inherits the current contexts.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(ContextSnapshot::current().scope(future))
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
