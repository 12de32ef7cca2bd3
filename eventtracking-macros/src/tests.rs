//! Unit tests of parsing and expansion, on token streams (no compiler needed).

use quote::quote;
use syn::DeriveInput;

use crate::ast::{doc_comment, is_option};
use crate::expand::derive_tracked_event;

fn expand(input: proc_macro2::TokenStream) -> Result<String, Vec<String>> {
    let input: DeriveInput = syn::parse2(input).unwrap();
    derive_tracked_event(&input)
        .map(|tokens| tokens.to_string())
        .map_err(|error| error.into_iter().map(|e| e.to_string()).collect())
}

/// The expansion without spaces, so that `quote!` spacing does not matter.
fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn doc_comments_are_joined_stripped_and_trimmed() {
    let input: DeriveInput = syn::parse_quote! {
        /// A learner created a postal address.
        ///
        /// Emitted when the address form is saved.
        ///   Indented.
        #[doc = ""]
        struct S;
    };
    assert_eq!(
        doc_comment(&input.attrs),
        "A learner created a postal address.\n\nEmitted when the address form is saved.\n  Indented."
    );
    let none: DeriveInput = syn::parse_quote!(
        struct S;
    );
    assert_eq!(doc_comment(&none.attrs), "");
    let block: DeriveInput = syn::parse_quote! {
        #[doc = " First.\n Second."]
        #[doc = include_str!("lib.rs")]
        struct S;
    };
    assert_eq!(doc_comment(&block.attrs), "First.\nSecond.");
}

#[test]
fn option_is_recognised_by_its_last_segment() {
    for ty in [
        quote!(Option<String>),
        quote!(std::option::Option<u8>),
        quote!(::core::option::Option<Vec<u8>>),
        quote!((Option<u8>)),
    ] {
        assert!(is_option(&syn::parse2(ty.clone()).unwrap()), "{ty}");
    }
    for ty in [
        quote!(String),
        quote!(Vec<Option<u8>>),
        quote!(Option),
        quote!(<T as Trait>::Option<u8>),
        quote!(&Option<u8>),
    ] {
        assert!(!is_option(&syn::parse2(ty.clone()).unwrap()), "{ty}");
    }
}

#[test]
fn expansion_has_the_agreed_shape() {
    let expanded = compact(
        &expand(quote! {
            /// A learner created a postal address.
            ///
            /// Emitted when the address form is saved.
            #[derive(TrackedEvent, Serialize)]
            #[tracked_event(name = "address.create", version = 1)]
            #[serde(rename_all = "camelCase")]
            struct AddressCreate {
                /// The addressee.
                name: String,
                /// Where the address is.
                #[tracked_event(rename = "addr")]
                address: PostalAddress,
                #[tracked_event(skip)]
                cache: u32,
                /// The learner.
                #[tracked_event(context)]
                user_id: u64,
                note: Option<String>,
            }
        })
        .unwrap(),
    );
    for expected in [
        "impl::eventtracking::TrackedEventforAddressCreate",
        "constNAME:&'staticstr=\"address.create\";",
        "constVERSION:u32=1u32;",
        "constSCHEMA:&'staticstr=\"address.create@1\";",
        "constHAS_CONTEXT_FIELDS:bool=true;",
        "serialize_map(::core::option::Option::Some(3usize))?;",
        "map.serialize_entry(\"name\",&self.name)?;map.serialize_entry(\"addr\",&self.address)?;map.serialize_entry(\"note\",&self.note)?;map.end()",
        "fncontext_fields(&self,context:&mut::eventtracking::JsonMap,)",
        "::from(\"user_id\"),::eventtracking::__private::serde_json::to_value(&self.user_id)?,);",
        "fn__field_schema_0(generator:&mut::eventtracking::catalog::SchemaGenerator,)->::eventtracking::__private::serde_json::Value{generator.subschema_for::<String>()}",
        "fn__field_schema_3(",
        "subschema_for::<Option<String>>()",
        "::eventtracking::__private::inventory::submit!",
        "EventTypeInfo::new(\"address.create\",1u32,\"Alearnercreatedapostaladdress.\\n\\nEmittedwhentheaddressformissaved.\",::core::concat!(::core::module_path!(),\"::\",\"AddressCreate\"),",
        "const_:()=::eventtracking::__private::check_event_name_const(\"address.create\");",
        "::eventtracking::FieldInfo::new(\"name\",\"Theaddressee.\",::eventtracking::FieldLocation::Data,true,__field_schema_0,)",
        "::eventtracking::FieldInfo::new(\"addr\",\"Wheretheaddressis.\",::eventtracking::FieldLocation::Data,true,__field_schema_1,)",
        "::eventtracking::FieldInfo::new(\"user_id\",\"Thelearner.\",::eventtracking::FieldLocation::Context,true,__field_schema_2,)",
        "::eventtracking::FieldInfo::new(\"note\",\"\",::eventtracking::FieldLocation::Data,false,__field_schema_3,)",
    ] {
        assert!(expanded.contains(expected), "missing {expected} in\n{expanded}");
    }
    assert!(!expanded.contains("cache"), "{expanded}");
    assert!(!expanded.contains("__field_schema_4"), "{expanded}");
}

#[test]
fn unit_struct_without_context_and_with_a_crate_path() {
    let expanded = compact(
        &expand(quote! {
            #[tracked_event(name = "ping", crate = "eventtracking_core", version = 4294967295)]
            struct r#Ping;
        })
        .unwrap(),
    );
    for expected in [
        "impleventtracking_core::TrackedEventforr#Ping",
        "constVERSION:u32=4294967295u32;",
        "constSCHEMA:&'staticstr=\"ping@4294967295\";",
        "constHAS_CONTEXT_FIELDS:bool=false;",
        "letmap=serializer.serialize_map(::core::option::Option::Some(0usize))?;map.end()",
        "EventTypeInfo::new(\"ping\",4294967295u32,\"\",::core::concat!(::core::module_path!(),\"::\",\"Ping\"),&[],)",
    ] {
        assert!(
            expanded.contains(expected),
            "missing {expected} in\n{expanded}"
        );
    }
    assert!(!expanded.contains("context_fields"), "{expanded}");
}

#[test]
fn raw_field_names_lose_their_prefix() {
    let expanded = compact(
        &expand(quote! {
            #[tracked_event(name = "a")]
            struct A { r#type: u8 }
        })
        .unwrap(),
    );
    assert!(
        expanded.contains("map.serialize_entry(\"type\",&self.r#type)?;"),
        "{expanded}"
    );
}

#[test]
fn every_error_is_reported_in_one_pass() {
    let errors = expand(quote! {
        #[tracked_event(name = "has space", version = 0, verison = 2, name = "again")]
        #[tracked_event(crate = 5, version = "1")]
        #[serde(deny_unknown_fields)]
        struct Bad<'a> {
            #[tracked_event(skip, rename = "x", context, skip)]
            a: u8,
            #[tracked_event(rename = "")]
            b: u8,
            #[tracked_event(rename = "c")]
            c2: u8,
            c: u8,
            #[tracked_event(name = "oops", skip = true)]
            d: &'a str,
        }
    })
    .unwrap_err();
    // The name's own rule is the core's, checked when the expansion compiles
    // (tests/ui/fail/invalid_name.rs), so "has space" is not among these.
    let expected = [
        "version 0 is not allowed",
        "unknown `tracked_event` key `verison`; expected one of `name`, `version`, `crate`",
        "duplicate `tracked_event` key `name`",
        "expected a string literal: `crate = \"...\"`",
        "duplicate `tracked_event` key `version`",
        "expected an integer literal",
        "does not support generic parameters",
        "duplicate `tracked_event` key `skip`",
        "unknown `tracked_event` key `name` (`name` belongs on the struct); expected one of `skip`, `rename`, `context`",
        "`skip` takes no value",
        "`skip` and `rename` cannot be combined",
        "`skip` and `context` cannot be combined",
        "`rename` must not be empty",
        "fields `c2` and `c` both map to the key `c` in the event's data",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (error, expected) in errors.iter().zip(expected) {
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    }
}

#[test]
fn missing_name_and_unsupported_shapes() {
    let errors = expand(quote!(
        struct S {
            a: u8,
        }
    ))
    .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("missing event name: add `#[tracked_event(name = \"...\")]` to `S`"));

    let errors = expand(quote!(
        #[tracked_event(name = "e")]
        enum E {
            A,
        }
    ))
    .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("does not support enums"), "{errors:?}");

    let errors = expand(quote!(#[tracked_event(name = "u")] union U { a: u8 })).unwrap_err();
    assert!(errors[0].contains("does not support unions"), "{errors:?}");

    let errors = expand(quote!(
        #[tracked_event(name = "t")]
        struct T(u8);
    ))
    .unwrap_err();
    assert!(
        errors[0].contains("does not support tuple structs"),
        "{errors:?}"
    );

    let errors = expand(quote!(
        #[tracked_event(name = "t", version = 4294967296)]
        struct T;
    ))
    .unwrap_err();
    assert!(errors[0].contains("does not fit in a `u32`"), "{errors:?}");

    let errors = expand(quote!(
        #[tracked_event(name = "t", version = -1)]
        struct T;
    ))
    .unwrap_err();
    assert!(errors[0].contains("negative"), "{errors:?}");

    let errors = expand(quote!(
        #[tracked_event(name)]
        struct T;
    ))
    .unwrap_err();
    assert!(
        errors[0].contains("expected `name = \"...\"`"),
        "{errors:?}"
    );

    let errors = expand(quote!(
        #[tracked_event]
        struct T;
    ))
    .unwrap_err();
    assert!(
        errors[0].contains("expected attribute arguments in parentheses"),
        "{errors:?}"
    );
}

#[test]
fn same_key_in_data_and_in_context_is_allowed() {
    expand(quote! {
        #[tracked_event(name = "a")]
        struct A {
            user: u8,
            #[tracked_event(context)]
            user_: u8,
            #[tracked_event(context, rename = "user")]
            other: u8,
        }
    })
    .unwrap();
    let errors = expand(quote! {
        #[tracked_event(name = "a")]
        struct A {
            #[tracked_event(context)]
            user: u8,
            #[tracked_event(context, rename = "user")]
            other: u8,
        }
    })
    .unwrap_err();
    assert!(errors[0].contains("in the event's context"), "{errors:?}");
}

#[test]
fn a_syntax_error_does_not_also_report_a_missing_name() {
    let errors = expand(quote!(
        #[tracked_event(123, name = "x")]
        struct T;
    ))
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(!errors[0].contains("missing"), "{errors:?}");
    // Field attributes are still read after a struct-level syntax error.
    let errors = expand(quote! {
        #[tracked_event(name = "x" "y")]
        struct T {
            #[tracked_event(bogus)]
            a: u8,
        }
    })
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[1].contains("unknown `tracked_event` key `bogus`"),
        "{errors:?}"
    );
}
