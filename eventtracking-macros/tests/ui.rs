//! Compile-time behaviour of `#[derive(TrackedEvent)]`: what compiles (and
//! runs) in `ui/pass`, and the errors of `ui/fail` against their `.stderr`
//! snapshots, which are rustc 1.95's. Regenerate them with
//! `TRYBUILD=overwrite cargo test -p eventtracking-macros --test ui`.

#[rustversion::attr(not(stable(1.95)), ignore = "the .stderr snapshots are rustc 1.95's")]
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
