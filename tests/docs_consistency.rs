//! What the documentation says about the code is checked against the code: settings it
//! names exist, section references point at the section they name, the WebSocket
//! subprotocol is never called by the ALPN id's name, and every link of the Markdown
//! reaches the file and the heading it names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails, listing `found`, if anything was: `what` says what they are.
fn none_found(what: &str, found: &[String]) {
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

/// Every Rust and Markdown file of the workspace, examples and tests included.
fn documented_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") || name.ends_with(".md") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root(), &mut files);
    files
}

/// The lines of `file` that are prose: all of a Markdown file, comments of a Rust file.
fn prose(file: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(file).unwrap();
    let markdown = file.extension().is_some_and(|e| e == "md");
    text.lines()
        .enumerate()
        .filter(|(_, line)| markdown || line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line.to_owned()))
        .collect()
}

/// Occurrences of `` `Type::name `` in `line`, for each configuration type.
fn settings_named(line: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for ty in ["ServerConfig", "ClientConfig", "ServerLimits", "Limits"] {
        let pattern = format!("`{ty}::");
        let mut rest = line;
        while let Some(at) = rest.find(&pattern) {
            rest = &rest[at + pattern.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((ty, name));
            }
        }
    }
    found
}

/// Where each configuration type is defined.
fn definition(ty: &str) -> String {
    let file = match ty {
        "ServerConfig" => "hardlight-server/src/config.rs",
        "ClientConfig" => "hardlight-client/src/config.rs",
        "Limits" => "hardlight-core/src/limits.rs",
        "ServerLimits" => "hardlight-server/src/limits.rs",
        other => panic!("no definition known for {other}"),
    };
    fs::read_to_string(root().join(file)).unwrap()
}

#[test]
fn every_setting_the_docs_name_exists() {
    let mut missing = Vec::new();
    for file in documented_files() {
        for (line_no, line) in prose(&file) {
            for (ty, name) in settings_named(&line) {
                let source = definition(ty);
                let defined = [
                    format!("fn {name}("),
                    format!("fn {name}<"),
                    format!("pub {name}:"),
                ]
                .iter()
                .any(|p| source.contains(p.as_str()));
                if !defined {
                    missing.push(format!("{}:{line_no}: {ty}::{name}", file.display()));
                }
            }
        }
    }
    none_found("settings that do not exist", &missing);
}

#[test]
fn section_references_name_the_section_they_point_at() {
    let spec = fs::read_to_string(root().join("docs/PROTOCOL.md")).unwrap();
    let headings: Vec<(String, String)> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| h.split_once(". "))
        .map(|(n, title)| (n.to_owned(), title.to_owned()))
        .collect();
    assert!(headings.len() > 5, "PROTOCOL.md headings not found");
    let mut wrong = Vec::new();
    for file in documented_files() {
        if file.ends_with("docs/PROTOCOL.md") {
            continue;
        }
        for (line_no, line) in prose(&file) {
            for (_, after) in line.match_indices('§').map(|(i, _)| line.split_at(i)) {
                let reference = &after['§'.len_utf8()..];
                let number: String = reference.chars().take_while(char::is_ascii_digit).collect();
                let ok = headings.iter().any(|(n, title)| {
                    *n == number
                        && reference[number.len()..]
                            .trim_start()
                            .starts_with(title.as_str())
                });
                if !ok {
                    wrong.push(format!(
                        "{}:{line_no}: `§{reference}` (write `§N Title` with a heading of PROTOCOL.md)",
                        file.display()
                    ));
                }
            }
        }
    }
    none_found("section references", &wrong);
}

#[test]
fn the_websocket_subprotocol_is_named_as_it_is_on_the_wire() {
    let ours = hardlight::protocol::handshake::websocket_subprotocol(hardlight::PROTOCOL_VERSION);
    assert_eq!(ours, "hardlight.8");
    let mut wrong = Vec::new();
    for file in documented_files() {
        for (line_no, line) in prose(&file) {
            if line.contains("subprotocol `hardlight/") {
                wrong.push(format!("{}:{line_no}", file.display()));
            }
        }
    }
    none_found("the subprotocol is `hardlight.<version>`", &wrong);
}

/// The lines of Markdown `text` outside fenced code blocks, numbered from 1.
fn outside_code(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((n + 1, line));
        }
    }
    lines
}

/// The anchors of a Markdown file's headings, as GitHub makes them: lower case, only
/// letters, digits, `-`, `_` and spaces kept, spaces made `-`; a repeated one gets `-1`,
/// `-2`… after it.
fn anchors(text: &str) -> HashSet<String> {
    let (mut made, mut seen) = (HashSet::new(), HashMap::<String, usize>::new());
    for (_, line) in outside_code(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let Some(title) = heading.trim_start_matches('#').strip_prefix(' ') else {
            continue;
        };
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let before = seen.entry(slug.clone()).or_default();
        made.insert(match *before {
            0 => slug,
            n => format!("{slug}-{n}"),
        });
        *before += 1;
    }
    made
}

/// The targets of the inline links (`](target)`) in `line`.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn every_link_in_the_markdown_reaches_its_file_and_heading() {
    let mut broken = Vec::new();
    // each linked file's headings, read once
    let mut headings: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    for file in documented_files() {
        if file.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        for (line_no, line) in outside_code(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
                let linked = match path {
                    "" => file.clone(),
                    path => file.parent().unwrap().join(path),
                };
                let reached = match (linked.exists(), anchor) {
                    (false, _) => false,
                    (true, "") => true,
                    (true, anchor) => {
                        linked.is_file()
                            && headings
                                .entry(linked.clone())
                                .or_insert_with(|| anchors(&fs::read_to_string(&linked).unwrap()))
                                .contains(anchor)
                    }
                };
                if !reached {
                    broken.push(format!("{}:{line_no}: ({target})", file.display()));
                }
            }
        }
    }
    none_found("links that lead nowhere", &broken);
}
