//! Misuse of the macros fails to compile with an error on the offending token.
//!
//! Compiler messages change between rustc releases, and with the crates in the build (a
//! type named like one of ours elsewhere in the crate graph is printed with its full path:
//! the `nats` feature brings `async_nats::Client` beside `hardlight::Client`). So these run
//! only on the rustc the expected output was recorded with (`tests/ui/rustc-version.txt`)
//! and with the features of README's test command; regenerate with
//! `TRYBUILD=overwrite cargo test --features hardlight/prometheus,hardlight/nats --test macro_ui`
//! after a toolchain upgrade.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn misuse_fails_to_compile_with_spanned_errors() {
    if cfg!(not(feature = "nats")) {
        eprintln!("skipped: expected output was recorded with the nats feature on");
        return;
    }
    let pinned = include_str!("ui/rustc-version.txt").trim();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .expect("run rustc --version");
    let actual = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if actual != pinned {
        eprintln!("skipped: expected output was recorded with `{pinned}`, this is `{actual}`");
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
