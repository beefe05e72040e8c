//! The shape of the source tree, checked: which layer may import which, and
//! how long a file may grow before it must say why.
//!
//! Layers, in the order a request flows through them: `cli` -> `config` ->
//! `tls` -> `proxy` -> `ui` (the web pages) -> `auth` -> `registry`, with
//! the protocol's vocabulary (`oci`) below `auth` and `registry`. A layer
//! imports only layers below it; `registry` takes exactly one thing from
//! `auth`, the `Authorized` proof. `ui` may name `tls` for the "connect a
//! machine" text (`tls::trust`), and nothing below `proxy` names `ui`. The check reads every `crate::` path in the code (comments
//! excluded), including grouped imports such as `use crate::{auth, oci}`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// For each layer, the layers it must never name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "oci",
        &["auth", "registry", "proxy", "tls", "config", "cli", "ui"],
    ),
    ("auth", &["registry", "proxy", "tls", "config", "cli", "ui"]),
    ("registry", &["proxy", "tls", "config", "cli", "ui"]),
    ("tls", &["auth", "registry", "proxy", "config", "cli", "ui"]),
    ("proxy", &["cli"]),
    ("config", &["proxy", "registry", "cli", "ui"]),
    ("ui", &["proxy", "config", "cli"]),
];

/// Files longer than this say why in their module comment, in a line
/// starting with `//! Long file:`.
const MAX_LINES: usize = 450;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The layer a file belongs to: its first directory under `src/`, or its
/// stem for a top-level file (`src/files.rs` -> `files`).
fn layer_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("a component");
    let first = first.as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Code without `//` comments (line and doc comments) and string literals
/// left as they are: good enough for paths in `use` lines and expressions.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named after `crate::`, with what follows it:
/// `crate::auth::Authorized` -> ("auth", "auth::Authorized"), and each
/// member of a group `crate::{auth, oci::Route}`.
fn crate_paths(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let member: String = member.split_whitespace().collect();
                if let Some(top) = member.split("::").next().filter(|t| !t.is_empty()) {
                    out.push((top.to_string(), member.clone()));
                }
            }
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if let Some(top) = path.split("::").next().filter(|t| !t.is_empty()) {
            out.push((top.to_string(), path.clone()));
        }
    }
    out
}

#[test]
fn layers_import_only_the_layers_below_them() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut problems = Vec::new();
    let mut seen_layers = BTreeSet::new();
    for file in &files {
        let layer = layer_of(file);
        seen_layers.insert(layer.clone());
        let text = fs::read_to_string(file).expect("read source");
        let code = code_of(&text);
        // `super::super::...` would climb out of a layer unseen.
        if code.contains("super::super::super") {
            problems.push(format!(
                "{}: climbs three levels with super::",
                file.display()
            ));
        }
        let forbidden = FORBIDDEN
            .iter()
            .find(|(l, _)| *l == layer)
            .map(|(_, f)| *f)
            .unwrap_or(&[]);
        for (top, path) in crate_paths(&code) {
            if forbidden.contains(&top.as_str()) {
                problems.push(format!("{}: {layer} imports crate::{path}", file.display()));
            }
            if layer == "registry" && top == "auth" && path != "auth::Authorized" {
                problems.push(format!(
                    "{}: registry may take only auth::Authorized from auth, not crate::{path}",
                    file.display()
                ));
            }
        }
    }
    for (layer, _) in FORBIDDEN {
        assert!(
            seen_layers.contains(*layer),
            "no files found for layer {layer}"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_import_check_sees_grouped_and_qualified_paths() {
    let code = code_of(
        "use crate::{auth, oci::Route};\n// crate::cli in a comment\nlet x = crate::registry::Registry::new();",
    );
    let tops: Vec<String> = crate_paths(&code).into_iter().map(|(t, _)| t).collect();
    assert_eq!(tops, ["auth", "oci", "registry"]);
}

#[test]
fn long_files_say_why_at_their_top() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "bench"] {
        if root.join(dir).is_dir() {
            rust_files(&root.join(dir), &mut files);
        }
    }
    let mut problems = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("read source");
        let lines = text.lines().count();
        let says_why = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .any(|l| l.starts_with("//! Long file:"));
        if lines > MAX_LINES && !says_why {
            problems.push(format!(
                "{}: {lines} lines, over {MAX_LINES}, and no `//! Long file:` reason at its top",
                file.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
