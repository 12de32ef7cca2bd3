//! Parsing of `#[tracked_event(...)]` on the struct and on its fields.
//!
//! Every problem goes to the [`Ctxt`] at its own span and parsing goes on
//! with the next key, so that one compilation reports all of them.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Lit, LitStr, Path, Token};

use crate::ctxt::Ctxt;
use crate::symbol::{
    CONTAINER_KEYS, CONTEXT, CRATE, FIELD_KEYS, NAME, RENAME, SKIP, TRACKED_EVENT, VERSION,
};

/// The struct-level keys, as written.
#[derive(Default)]
pub(crate) struct Container {
    /// `name = "..."`, if present and valid.
    pub(crate) name: Option<LitStr>,
    /// `version = N`, if present and valid.
    pub(crate) version: Option<u32>,
    /// `crate = "..."`, if present and valid.
    pub(crate) crate_path: Option<Path>,
}

/// The field-level keys, as written.
#[derive(Default)]
pub(crate) struct Field {
    /// The span of `skip`, if present.
    pub(crate) skip: Option<Span>,
    /// `rename = "..."`, if present and a string.
    pub(crate) rename: Option<LitStr>,
    /// The span of `context`, if present.
    pub(crate) context: Option<Span>,
}

/// Tracks whether a key was already given, to report the second occurrence.
struct Seen(&'static str, bool);

impl Seen {
    fn new(key: &'static str) -> Self {
        Seen(key, false)
    }

    /// Marks the key as given; `false` (and an error at `path`) if it already was.
    fn first(&mut self, cx: &Ctxt, path: &Path) -> bool {
        if self.1 {
            cx.error_spanned_by(
                path,
                format!("duplicate `{TRACKED_EVENT}` key `{}`: give it once", self.0),
            );
            false
        } else {
            self.1 = true;
            true
        }
    }
}

impl Container {
    /// Parses every `#[tracked_event(...)]` among the attributes of the
    /// struct `ident`, and reports a missing `name` at `ident`.
    pub(crate) fn from_attrs(cx: &Ctxt, ident: &Ident, attrs: &[Attribute]) -> Self {
        let mut container = Container::default();
        let mut name = Seen::new(NAME);
        let mut version = Seen::new(VERSION);
        let mut crate_path = Seen::new(CRATE);
        let mut syntax_error = false;
        for attr in attrs.iter().filter(|a| a.path().is_ident(TRACKED_EVENT)) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(NAME) {
                    let first = name.first(cx, &meta.path);
                    // The name's rule is checked by the core, at compile
                    // time, in the expansion (one rule for typed and
                    // untyped events).
                    if let Some(lit) = string_value(cx, &meta, NAME)? {
                        if first {
                            container.name = Some(lit);
                        }
                    }
                } else if meta.path.is_ident(VERSION) {
                    let first = version.first(cx, &meta.path);
                    if let Some(value) = version_value(cx, &meta)? {
                        if first {
                            container.version = Some(value);
                        }
                    }
                } else if meta.path.is_ident(CRATE) {
                    let first = crate_path.first(cx, &meta.path);
                    if let Some(lit) = string_value(cx, &meta, CRATE)? {
                        match lit.parse::<Path>() {
                            Ok(path) if first => container.crate_path = Some(path),
                            Ok(_) => {}
                            Err(_) => cx.error_spanned_by(
                                &lit,
                                format!(
                                    "`crate` must be a path such as \"eventtracking_core\", found {:?}",
                                    lit.value()
                                ),
                            ),
                        }
                    }
                } else {
                    unknown_key(cx, &meta, CONTAINER_KEYS, FIELD_KEYS, "a field")?;
                }
                Ok(())
            });
            if let Err(error) = parsed {
                syntax_error = true;
                cx.syn_error(error);
            }
        }
        // After a syntax error the name may sit in the part that was not read.
        if !name.1 && !syntax_error {
            cx.error_spanned_by(
                ident,
                format!(
                    "missing event name: add `#[{TRACKED_EVENT}(name = \"...\")]` to `{ident}`"
                ),
            );
        }
        container
    }
}

impl Field {
    /// Parses every `#[tracked_event(...)]` among a field's attributes.
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut field = Field::default();
        let mut skip = Seen::new(SKIP);
        let mut rename = Seen::new(RENAME);
        let mut context = Seen::new(CONTEXT);
        for attr in attrs.iter().filter(|a| a.path().is_ident(TRACKED_EVENT)) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(SKIP) {
                    let first = skip.first(cx, &meta.path);
                    if flag(cx, &meta, SKIP)? && first {
                        field.skip = Some(meta.path.span());
                    }
                } else if meta.path.is_ident(CONTEXT) {
                    let first = context.first(cx, &meta.path);
                    if flag(cx, &meta, CONTEXT)? && first {
                        field.context = Some(meta.path.span());
                    }
                } else if meta.path.is_ident(RENAME) {
                    let first = rename.first(cx, &meta.path);
                    if let Some(lit) = string_value(cx, &meta, RENAME)? {
                        if first {
                            field.rename = Some(lit);
                        }
                    }
                } else {
                    unknown_key(cx, &meta, FIELD_KEYS, CONTAINER_KEYS, "the struct")?;
                }
                Ok(())
            });
            if let Err(error) = parsed {
                cx.syn_error(error);
            }
        }
        field
    }
}

/// The tokens of `key = VALUE`, after the `=`, up to the next `,`.
///
/// `None` (with an error) when there is no `=` or no value.
fn value_tokens(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &str,
    example: &str,
) -> syn::Result<Option<TokenStream>> {
    if !meta.input.peek(Token![=]) {
        let rest = rest_of_item(meta.input)?;
        let path = &meta.path;
        cx.error_spanned_by(
            quote::quote!(#path #rest),
            format!("expected `{key} = {example}`"),
        );
        return Ok(None);
    }
    let eq: Token![=] = meta.input.parse()?;
    let tokens = rest_of_item(meta.input)?;
    if tokens.is_empty() {
        cx.error_at(eq.span, format!("expected a value: `{key} = {example}`"));
        return Ok(None);
    }
    Ok(Some(tokens))
}

/// `key = "..."`: the string literal, or `None` after reporting what is wrong.
fn string_value(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<Option<LitStr>> {
    let Some(tokens) = value_tokens(cx, meta, key, "\"...\"")? else {
        return Ok(None);
    };
    match syn::parse2::<Lit>(tokens.clone()) {
        Ok(Lit::Str(lit)) => Ok(Some(lit)),
        _ => {
            cx.error_spanned_by(
                tokens,
                format!("expected a string literal: `{key} = \"...\"`"),
            );
            Ok(None)
        }
    }
}

/// `version = N`: a positive integer that fits in a `u32`.
fn version_value(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<u32>> {
    let Some(tokens) = value_tokens(cx, meta, VERSION, "1")? else {
        return Ok(None);
    };
    let int = match syn::parse2::<Lit>(tokens.clone()) {
        Ok(Lit::Int(int)) => int,
        _ => {
            cx.error_spanned_by(
                tokens,
                "expected an integer literal: `version = 1` (a positive `u32`)",
            );
            return Ok(None);
        }
    };
    let digits = int.base10_digits();
    let problem = if digits.starts_with('-') {
        format!("version {digits} is negative: it must be a positive `u32`")
    } else {
        match digits.parse::<u32>() {
            Ok(0) => "version 0 is not allowed: versions start at 1".to_owned(),
            Ok(version) => return Ok(Some(version)),
            Err(_) => format!(
                "version {digits} does not fit in a `u32` (at most {})",
                u32::MAX
            ),
        }
    };
    cx.error_spanned_by(&int, problem);
    Ok(None)
}

/// A key without a value, like `skip`; `false` (with an error) if it has one.
fn flag(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<bool> {
    let rest = rest_of_item(meta.input)?;
    if rest.is_empty() {
        return Ok(true);
    }
    cx.error_spanned_by(
        rest,
        format!("`{key}` takes no value: write `#[{TRACKED_EVENT}({key})]`"),
    );
    Ok(false)
}

/// Reports an unknown key (and skips its value, if any).
fn unknown_key(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    known: &[&str],
    elsewhere: &[&str],
    elsewhere_name: &str,
) -> syn::Result<()> {
    rest_of_item(meta.input)?;
    let key = meta.path.to_token_stream().to_string().replace(' ', "");
    let known = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = if elsewhere.contains(&key.as_str()) {
        format!(" (`{key}` belongs on {elsewhere_name})")
    } else {
        String::new()
    };
    cx.error_spanned_by(
        &meta.path,
        format!("unknown `{TRACKED_EVENT}` key `{key}`{hint}; expected one of {known}"),
    );
    Ok(())
}

/// Takes the tokens up to the next top-level `,` (or the end), leaving the `,`.
fn rest_of_item(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    input.step(|cursor| {
        let mut tokens = TokenStream::new();
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            if matches!(&tree, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            tokens.extend([tree]);
            rest = next;
        }
        Ok((tokens, rest))
    })
}
