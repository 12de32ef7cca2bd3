//! The names the derive recognises.

/// The attribute: `#[tracked_event(...)]`.
pub(crate) const TRACKED_EVENT: &str = "tracked_event";
/// Doc comments arrive as `#[doc = "..."]`.
pub(crate) const DOC: &str = "doc";

/// Struct key: the event name (required).
pub(crate) const NAME: &str = "name";
/// Struct key: the schema version (default 1).
pub(crate) const VERSION: &str = "version";
/// Struct key: the path of the eventtracking crate (default `::eventtracking`).
pub(crate) const CRATE: &str = "crate";

/// Field key: leave the field out of the event.
pub(crate) const SKIP: &str = "skip";
/// Field key: the key in the event's data or context.
pub(crate) const RENAME: &str = "rename";
/// Field key: put the field in the event's context rather than its data.
pub(crate) const CONTEXT: &str = "context";

/// The keys allowed on the struct, for error messages.
pub(crate) const CONTAINER_KEYS: &[&str] = &[NAME, VERSION, CRATE];
/// The keys allowed on a field, for error messages.
pub(crate) const FIELD_KEYS: &[&str] = &[SKIP, RENAME, CONTEXT];

/// The crate path used when the struct has no `crate = "..."`.
pub(crate) const DEFAULT_CRATE: &str = "::eventtracking";
