//! # eventtracking-macros
//!
//! `#[derive(TrackedEvent)]` for eventtracking: it turns a struct into a
//! typed, self-documenting event type. The derive implements
//! `TrackedEvent` (the constant name, version and schema reference, the
//! payload writer; `emit()` and `emit_to(&tracker)` come with the trait) and
//! registers the type in the event catalog at compile time (`inventory`):
//! its name, version, doc comment, each field's doc comment and a JSON Schema
//! of each field's type.
//!
//! Use it through the `eventtracking` facade (feature `derive`, on by
//! default) or `eventtracking-core` (feature `derive`); this crate only
//! generates tokens.
//!
//! # Usage
//!
//! ```
//! use eventtracking::TrackedEvent;
//! use schemars::JsonSchema;
//! use serde::Serialize;
//! use serde_json::json;
//!
//! /// A postal address; nested types derive `Serialize` and `JsonSchema`.
//! #[derive(Serialize, JsonSchema)]
//! struct PostalAddress {
//!     city: String,
//! }
//!
//! /// A learner created a postal address.
//! ///
//! /// Emitted when the address form is saved.
//! #[derive(TrackedEvent)]
//! #[tracked_event(name = "address.create", version = 2)]
//! struct AddressCreate {
//!     /// The addressee.
//!     name: String,
//!     /// Where the address is.
//!     #[tracked_event(rename = "addr")]
//!     address: PostalAddress,
//!     /// Not part of the event.
//!     #[tracked_event(skip)]
//!     attempts: u32,
//!     /// The learner, put in the event's context.
//!     #[tracked_event(context)]
//!     user_id: u64,
//!     /// An `Option` field is not required by the schema.
//!     note: Option<String>,
//! }
//!
//! let event = AddressCreate {
//!     name: "Ada".into(),
//!     address: PostalAddress { city: "London".into() },
//!     attempts: 3,
//!     user_id: 7,
//!     note: None,
//! };
//! assert_eq!(AddressCreate::SCHEMA, "address.create@2");
//! let data = event.serialize_data(serde_json::value::Serializer).unwrap();
//! assert_eq!(data, json!({"name": "Ada", "addr": {"city": "London"}, "note": null}));
//!
//! let catalog = eventtracking::catalog().unwrap();
//! let entry = catalog.get("address.create", 2).unwrap();
//! assert_eq!(entry.description, "A learner created a postal address.\n\nEmitted when the address form is saved.");
//!
//! // `event.emit()` sends it to the default tracker, `event.emit_to(&tracker)` to another.
//! ```
//!
//! # Attributes
//!
//! | where | key | meaning |
//! |---|---|---|
//! | struct | `name = "..."` | the event name (required): not empty, at most 255 bytes, no whitespace, control characters or `@` |
//! | struct | `version = N` | the schema version, a `u32` from 1 (default 1) |
//! | struct | `crate = "..."` | the path of the crate that defines `TrackedEvent` (default `::eventtracking`; `"eventtracking_core"` when using the core crate directly) |
//! | field | `skip` | leaves the field out of the event and its schema |
//! | field | `rename = "..."` | the field's key in the event (default: the field name) |
//! | field | `context` | puts the field into the event's context rather than its data |
//!
//! Other attributes (`#[serde(...)]`, `#[schemars(...)]`) are ignored: the
//! derive writes the payload itself, field by field, with each field's own
//! `Serialize` impl, so the event struct needs neither `Serialize` nor
//! `JsonSchema`. The types of its fields need both (`schemars` 1), since
//! the catalog describes each field with its type's JSON Schema. A field
//! whose type is written `Option<..>` is not required by that schema.
//!
//! The doc comment of the struct becomes the description of the event type,
//! and each field's doc comment the description of its key.
//!
//! Generic structs, tuple structs, enums and unions are rejected: a catalog
//! entry documents one concrete type whose data is a JSON object. Every
//! mistake in the attributes is reported at its own span, all in one
//! compilation.
//!
//! # MSRV
//!
//! Rust 1.85.
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod symbol;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `TrackedEvent` and registers the struct in the event catalog.
///
/// See the [crate documentation](crate) for the attributes.
#[proc_macro_derive(TrackedEvent, attributes(tracked_event))]
pub fn derive_tracked_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_tracked_event(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[cfg(test)]
mod tests;
