// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The top README's quick start for VMM authors shows examples/embed.rs,
//! which scripts/test compiles for aarch64: its code block must be the
//! example's `main` as it is, so that what a reader copies is what was
//! compiled. (Only in the repository: the crate's package leaves this test
//! out, as it has no top README.)

use std::path::Path;

/// The line that precedes the README's copy of the example.
const MARKER: &str = "<!-- tools/host-tee/examples/embed.rs, its aarch64 main -->";

/// The README's code block after `MARKER`, line by line.
fn readme_block(readme: &str) -> Vec<&str> {
    let after = readme
        .split_once(MARKER)
        .unwrap_or_else(|| panic!("README.md has no line {MARKER:?}"))
        .1;
    let mut lines = after.lines().skip_while(|l| l.trim().is_empty());
    assert_eq!(
        lines.next(),
        Some("```rust,ignore"),
        "a rust,ignore block must follow {MARKER:?}"
    );
    lines.take_while(|l| *l != "```").collect()
}

/// The body of the example's aarch64 `main`, one indentation level less.
fn example_body(example: &str) -> Vec<&str> {
    let start = example
        .find("#[cfg(target_arch = \"aarch64\")]\nfn main()")
        .expect("examples/embed.rs has an aarch64 main");
    example[start..]
        .lines()
        .skip(2)
        .take_while(|l| *l != "}")
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect()
}

#[test]
fn the_readme_shows_the_example_as_compiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("the top README.md");
    let example = include_str!("../examples/embed.rs");
    let body = example_body(example);
    assert!(body.len() >= 10, "the example's main: {body:?}");
    assert!(
        body.len() <= 30,
        "the quick start promises at most 30 lines: {}",
        body.len()
    );
    assert_eq!(
        readme_block(&readme),
        body,
        "README.md's copy of examples/embed.rs differs"
    );
}
