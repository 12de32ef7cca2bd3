//! Rules that involve more than one key or more than one field.

use std::collections::BTreeMap;

use crate::ast::{Container, Field};
use crate::ctxt::Ctxt;
use crate::symbol::{CONTEXT, RENAME, SKIP, TRACKED_EVENT};

/// Checks the fields of `container`, reporting every problem to `cx`.
pub(crate) fn check(cx: &Ctxt, container: &Container<'_>) {
    check_skip(cx, container);
    check_rename(cx, container);
    check_duplicate_keys(cx, container);
}

/// `skip` leaves the field out: `rename` and `context` would mean nothing.
fn check_skip(cx: &Ctxt, container: &Container<'_>) {
    for field in container.fields.iter().filter(|f| f.skipped()) {
        if let Some(rename) = &field.attrs.rename {
            cx.error_spanned_by(
                rename,
                format!(
                    "`{SKIP}` and `{RENAME}` cannot be combined: \
                     a skipped field has no key in the event"
                ),
            );
        }
        if let Some(context) = field.attrs.context {
            cx.error_at(
                context,
                format!(
                    "`{SKIP}` and `{CONTEXT}` cannot be combined: \
                     a skipped field goes neither into the data nor into the context"
                ),
            );
        }
    }
}

/// `rename = ""` would make an empty key.
fn check_rename(cx: &Ctxt, container: &Container<'_>) {
    for field in &container.fields {
        if let Some(rename) = &field.attrs.rename {
            if rename.value().is_empty() {
                cx.error_spanned_by(
                    rename,
                    format!("`{RENAME}` must not be empty: it is the field's key in the event"),
                );
            }
        }
    }
}

/// Two fields with the same key in the data, or in the context.
fn check_duplicate_keys(cx: &Ctxt, container: &Container<'_>) {
    let mut data: BTreeMap<String, &Field<'_>> = BTreeMap::new();
    let mut context: BTreeMap<String, &Field<'_>> = BTreeMap::new();
    for field in container.fields.iter().filter(|f| !f.skipped()) {
        let key = field.key();
        if key.is_empty() {
            continue; // Reported by `check_rename`.
        }
        let (seen, location) = if field.in_context() {
            (&mut context, "context")
        } else {
            (&mut data, "data")
        };
        if let Some(first) = seen.get(&key) {
            let span = match &field.attrs.rename {
                Some(rename) => rename.span(),
                None => field.ident.span(),
            };
            cx.error_at(
                span,
                format!(
                    "fields `{}` and `{}` both map to the key `{key}` in the event's {location}; \
                     give one of them another key with `#[{TRACKED_EVENT}({RENAME} = \"...\")]`",
                    first.ident, field.ident
                ),
            );
        } else {
            seen.insert(key, field);
        }
    }
}
