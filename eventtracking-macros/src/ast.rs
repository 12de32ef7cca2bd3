//! The struct as the derive sees it: its fields, doc comments and attributes.

use syn::ext::IdentExt as _;
use syn::{Attribute, Data, DeriveInput, Expr, Fields, Ident, Lit, Meta, Type, WhereClause};

use crate::attr;
use crate::ctxt::Ctxt;
use crate::symbol::DOC;

/// A struct deriving `TrackedEvent`.
pub(crate) struct Container<'a> {
    /// The struct's name.
    pub(crate) ident: &'a Ident,
    /// `#[tracked_event(...)]` on the struct.
    pub(crate) attrs: attr::Container,
    /// The struct's doc comment.
    pub(crate) doc: String,
    /// The named fields, in declaration order (none for a unit struct).
    pub(crate) fields: Vec<Field<'a>>,
    /// A `where` clause (no generics are allowed, so it only names concrete types).
    pub(crate) where_clause: Option<&'a WhereClause>,
}

/// One named field.
pub(crate) struct Field<'a> {
    /// The field's name.
    pub(crate) ident: &'a Ident,
    /// The field's type.
    pub(crate) ty: &'a Type,
    /// `#[tracked_event(...)]` on the field.
    pub(crate) attrs: attr::Field,
    /// The field's doc comment.
    pub(crate) doc: String,
}

impl<'a> Container<'a> {
    /// Reads the derive input; `None` when it is not a struct with named
    /// fields or a unit struct (the error is in `cx`).
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let attrs = attr::Container::from_attrs(cx, &input.ident, &input.attrs);
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(
                &input.generics,
                "`#[derive(TrackedEvent)]` does not support generic parameters (lifetimes included): \
                 a catalog entry documents one concrete type with one schema",
            );
        }
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(
                    named
                        .named
                        .iter()
                        .filter_map(|field| Field::from_ast(cx, field))
                        .collect(),
                ),
                Fields::Unit => Some(Vec::new()),
                Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(
                        unnamed,
                        "`#[derive(TrackedEvent)]` does not support tuple structs: \
                         name the fields, their names are the keys of the event's data",
                    );
                    None
                }
            },
            Data::Enum(data) => {
                cx.error_at(
                    data.enum_token.span,
                    "`#[derive(TrackedEvent)]` does not support enums: \
                     derive it on a struct per event type",
                );
                None
            }
            Data::Union(data) => {
                cx.error_at(
                    data.union_token.span,
                    "`#[derive(TrackedEvent)]` does not support unions: \
                     derive it on a struct per event type",
                );
                None
            }
        };
        Some(Container {
            ident: &input.ident,
            attrs,
            doc: doc_comment(&input.attrs),
            fields: fields?,
            where_clause: input.generics.where_clause.as_ref(),
        })
    }
}

impl<'a> Field<'a> {
    fn from_ast(cx: &Ctxt, field: &'a syn::Field) -> Option<Self> {
        Some(Field {
            ident: field.ident.as_ref()?,
            ty: &field.ty,
            attrs: attr::Field::from_attrs(cx, &field.attrs),
            doc: doc_comment(&field.attrs),
        })
    }

    /// The key in the event: `rename`, else the field name (without `r#`).
    pub(crate) fn key(&self) -> String {
        match &self.attrs.rename {
            Some(rename) => rename.value(),
            None => self.ident.unraw().to_string(),
        }
    }

    /// Whether the field is left out of the event.
    pub(crate) fn skipped(&self) -> bool {
        self.attrs.skip.is_some()
    }

    /// Whether the field goes into the event's context.
    pub(crate) fn in_context(&self) -> bool {
        self.attrs.context.is_some()
    }

    /// Whether the key may be absent: the type is spelled `Option<..>`.
    pub(crate) fn optional(&self) -> bool {
        is_option(self.ty)
    }
}

/// Whether `ty` is written as `Option<..>` (any path whose last segment is `Option<..>`).
pub(crate) fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Group(group) => is_option(&group.elem),
        Type::Paren(paren) => is_option(&paren.elem),
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().is_some_and(|segment| {
                segment.ident == "Option"
                    && matches!(segment.arguments, syn::PathArguments::AngleBracketed(_))
            })
        }
        _ => false,
    }
}

/// The `#[doc = "..."]` attributes joined with newlines, each line without
/// one leading space, the whole trimmed; empty when there are none.
///
/// Docs that are not string literals (`#[doc = include_str!(..)]`) are left out.
pub(crate) fn doc_comment(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident(DOC)) {
        let Meta::NameValue(name_value) = &attr.meta else {
            continue;
        };
        let mut value = &name_value.value;
        while let Expr::Group(group) = value {
            value = &group.expr;
        }
        if let Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) = value
        {
            for line in lit.value().split('\n') {
                let line = line.strip_suffix('\r').unwrap_or(line);
                lines.push(line.strip_prefix(' ').unwrap_or(line).to_owned());
            }
        }
    }
    lines.join("\n").trim().to_owned()
}
