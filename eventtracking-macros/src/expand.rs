//! The generated code: the `TrackedEvent` impl and the catalog registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Path};

use crate::ast::{Container, Field};
use crate::check;
use crate::ctxt::Ctxt;
use crate::symbol::DEFAULT_CRATE;

/// Expands `#[derive(TrackedEvent)]` on `input`, or returns every error found.
pub(crate) fn derive_tracked_event(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let container = Container::from_ast(&cx, input);
    if let Some(container) = &container {
        check::check(&cx, container);
    }
    cx.check()?;
    let container = container.expect("no container without an error");
    Ok(generate(&container))
}

fn generate(container: &Container<'_>) -> TokenStream {
    let default_crate: Path;
    let krate = match &container.attrs.crate_path {
        Some(path) => path,
        None => {
            default_crate = syn::parse_str(DEFAULT_CRATE).expect("valid default path");
            &default_crate
        }
    };
    let ident = container.ident;
    let where_clause = container.where_clause;
    let name_literal = container
        .attrs
        .name
        .as_ref()
        .expect("checked: the name is present");
    let name = name_literal.value();
    // The core's one name rule, evaluated at compile time; a bad name fails
    // the build at the literal with the rule's reason.
    let check = respan(
        quote!(#krate::__private::check_event_name_const),
        name_literal.span(),
    );
    let name_check = quote_spanned!(name_literal.span()=>
        const _: () = #check(#name_literal);
    );
    let version = container.attrs.version.unwrap_or(1);
    let schema = format!("{name}@{version}");
    let type_name = syn::ext::IdentExt::unraw(ident).to_string();
    let description = &container.doc;

    let fields: Vec<&Field<'_>> = container.fields.iter().filter(|f| !f.skipped()).collect();
    let data: Vec<&Field<'_>> = fields.iter().copied().filter(|f| !f.in_context()).collect();
    let context: Vec<&Field<'_>> = fields.iter().copied().filter(|f| f.in_context()).collect();
    let has_context = !context.is_empty();

    let data_len = data.len();
    let map_binding = if data.is_empty() {
        quote!(map)
    } else {
        quote!(mut map)
    };
    let entries = data.iter().map(|field| {
        let key = field.key();
        let member = field.ident;
        // The value spans the field's type, so that a missing `Serialize`
        // is reported there.
        let value = quote_spanned!(field.ty.span()=> &self.#member);
        quote!(map.serialize_entry(#key, #value)?;)
    });

    // The payload as JSON text, written straight into the emit buffer: keys
    // as ready-made bytes (`{"key":`, `,"key":`), values through serde_json.
    let writes = data.iter().enumerate().map(|(index, field)| {
        let key = field.key();
        let member = field.ident;
        let value = quote_spanned!(field.ty.span()=> &self.#member);
        let separator = if index == 0 { "{" } else { "," };
        let write_key = if key.chars().all(|c| c >= ' ' && c != '"' && c != '\\') {
            // Nothing in the key needs escaping: its JSON is the key quoted.
            let text = proc_macro2::Literal::string(&format!("{separator}\"{key}\":"));
            quote!(out.push_str(#text);)
        } else {
            quote! {
                out.push_str(#separator);
                #krate::__private::write_json_value(&mut *out, &#key)?;
                out.push(':');
            }
        };
        quote! {
            #write_key
            #krate::__private::write_json_value(&mut *out, #value)?;
        }
    });
    let close = if data.is_empty() { "{}" } else { "}" };

    let context_fields = has_context.then(|| {
        let inserts = context.iter().map(|field| {
            let key = field.key();
            let member = field.ident;
            let value = quote_spanned!(field.ty.span()=> &self.#member);
            quote! {
                context.insert(
                    <::std::string::String as ::core::convert::From<&str>>::from(#key),
                    #krate::__private::serde_json::to_value(#value)?,
                );
            }
        });
        quote! {
            fn context_fields(
                &self,
                context: &mut #krate::JsonMap,
            ) -> ::core::result::Result<(), #krate::__private::serde_json::Error> {
                #(#inserts)*
                ::core::result::Result::Ok(())
            }
        }
    });

    let schema_fns = fields.iter().enumerate().map(|(index, field)| {
        let function = quote::format_ident!("__field_schema_{index}");
        let ty = field.ty;
        // Spanned at the type, so that a missing `JsonSchema` is reported there.
        let body = quote_spanned!(ty.span()=> generator.subschema_for::<#ty>());
        quote! {
            fn #function(
                generator: &mut #krate::catalog::SchemaGenerator,
            ) -> #krate::__private::serde_json::Value {
                #body
            }
        }
    });
    let field_infos = fields.iter().enumerate().map(|(index, field)| {
        let function = quote::format_ident!("__field_schema_{index}");
        let key = field.key();
        let doc = &field.doc;
        let location = if field.in_context() {
            quote!(Context)
        } else {
            quote!(Data)
        };
        let required = !field.optional();
        quote! {
            #krate::FieldInfo::new(
                #key,
                #doc,
                #krate::FieldLocation::#location,
                #required,
                #function,
            )
        }
    });

    quote! {
        #[automatically_derived]
        impl #krate::TrackedEvent for #ident #where_clause {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const SCHEMA: &'static str = #schema;
            const HAS_CONTEXT_FIELDS: bool = #has_context;

            fn serialize_data<__S: #krate::__private::serde::Serializer>(
                &self,
                serializer: __S,
            ) -> ::core::result::Result<__S::Ok, __S::Error> {
                use #krate::__private::serde::ser::SerializeMap as _;
                let #map_binding = serializer.serialize_map(::core::option::Option::Some(#data_len))?;
                #(#entries)*
                map.end()
            }

            fn __shared_name() -> ::core::option::Option<::std::sync::Arc<str>> {
                // One string per type, shared by its events (the name is
                // checked at compile time below).
                static NAME: ::std::sync::OnceLock<::std::sync::Arc<str>> =
                    ::std::sync::OnceLock::new();
                ::core::option::Option::Some(::core::clone::Clone::clone(NAME.get_or_init(|| {
                    <::std::sync::Arc<str> as ::core::convert::From<&str>>::from(#name)
                })))
            }

            fn write_data_json(
                &self,
                out: &mut ::std::string::String,
            ) -> ::core::result::Result<(), #krate::__private::serde_json::Error> {
                #(#writes)*
                out.push_str(#close);
                ::core::result::Result::Ok(())
            }

            #context_fields
        }

        #name_check

        #[doc(hidden)]
        const _: () = {
            #(#schema_fns)*

            #krate::__private::inventory::submit! {
                #krate::EventTypeInfo::new(
                    #name,
                    #version,
                    #description,
                    ::core::concat!(::core::module_path!(), "::", #type_name),
                    &[#(#field_infos),*],
                )
            }
        };
    }
}

/// `tokens` with every token at `span`, so that an error in code made of
/// them (here: the name check's const evaluation) points at `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut respanned =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                token = proc_macro2::TokenTree::Group(respanned);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}
