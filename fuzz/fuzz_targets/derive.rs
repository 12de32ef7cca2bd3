//! `#[derive(TrackedEvent)]` on any item text: the derive's own sources
//! (compiled in here, as the proc-macro crate cannot be linked) expand it or
//! return errors, never panic; an expansion parses as Rust items.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-macros/src/ast.rs"]
mod ast;
#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-macros/src/attr.rs"]
mod attr;
#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-macros/src/check.rs"]
mod check;
#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-macros/src/ctxt.rs"]
mod ctxt;
#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-macros/src/expand.rs"]
mod expand;
#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-macros/src/symbol.rs"]
mod symbol;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(input) = syn::parse_str::<syn::DeriveInput>(text) else {
        return;
    };
    match expand::derive_tracked_event(&input) {
        Ok(tokens) => {
            if let Err(error) = syn::parse2::<syn::File>(tokens.clone()) {
                panic!("expansion is not Rust items: {error}\n{tokens}");
            }
        }
        Err(errors) => {
            for error in &errors {
                assert!(!error.to_string().is_empty());
            }
            let _ = errors.into_compile_error();
        }
    }
});
