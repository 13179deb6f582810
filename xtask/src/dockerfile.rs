//! What a Dockerfile builds on: the image each `FROM` names, with build arguments
//! substituted as the builder does (global `ARG`s before the first `FROM`, overridden by
//! the build's arguments). `scratch` and references to earlier stages are not images.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// The images the `FROM` lines of `dockerfile` name, in order, without duplicates.
pub(crate) fn base_images(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Result<Vec<String>> {
    let mut globals: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = vec![];
    let mut bases: Vec<String> = vec![];
    let mut seen_from = false;
    for (number, line) in logical_lines(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else { continue };
        match instruction.to_ascii_uppercase().as_str() {
            "ARG" if !seen_from => {
                for declaration in words {
                    let (name, default) = match declaration.split_once('=') {
                        Some((name, value)) => (name, Some(unquote(value))),
                        None => (declaration, None),
                    };
                    let value = build_args.get(name).cloned().or(default.map(|d| substitute(&d, &globals)));
                    globals.insert(name.to_string(), value.unwrap_or_default());
                }
            }
            "FROM" => {
                seen_from = true;
                let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                let Some(reference) = rest.first() else {
                    bail!("line {number}: FROM names no image");
                };
                let image = substitute(reference, &globals);
                if image.is_empty() {
                    bail!("line {number}: FROM {reference} is empty after build arguments; set the argument");
                }
                let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image))
                    || image.parse::<usize>().is_ok_and(|i| i < stages.len());
                if !is_stage && !image.eq_ignore_ascii_case("scratch") && !bases.contains(&image) {
                    bases.push(image);
                }
                if let [_, keyword, name, ..] = rest.as_slice()
                    && keyword.eq_ignore_ascii_case("as")
                {
                    stages.push(name.to_string());
                } else {
                    stages.push(String::new());
                }
            }
            _ => {}
        }
    }
    Ok(bases)
}

/// Instructions with their first line number: comments dropped, `\` continuations joined.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = vec![];
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push_str(body);
        entry.1.push(' ');
        if !continues {
            lines.extend(current.take());
        }
    }
    lines.extend(current);
    lines
}

fn unquote(value: &str) -> String {
    let quoted = value.len() >= 2
        && (value.starts_with('"') && value.ends_with('"') || value.starts_with('\'') && value.ends_with('\''));
    if quoted { value[1..value.len() - 1].to_string() } else { value.to_string() }
}

/// `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}`, as the builder expands them.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(inner) = after.strip_prefix('{')
            && let Some(end) = inner.find('}')
        {
            let expression = &inner[..end];
            let value = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
            out.push_str(&match expression.split_once(":-").or_else(|| expression.split_once(":+")) {
                Some((name, word)) if expression.contains(":-") => value(name).unwrap_or_else(|| word.to_string()),
                Some((name, word)) => value(name).map(|_| word.to_string()).unwrap_or_default(),
                None => value(expression).unwrap_or_default(),
            });
            rest = &inner[end + 1..];
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if end == 0 {
                out.push('$');
            } else {
                out.push_str(vars.get(&after[..end]).map(String::as_str).unwrap_or_default());
            }
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases(dockerfile: &str, args: &[(&str, &str)]) -> Vec<String> {
        let args = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        base_images(dockerfile, &args).unwrap()
    }

    #[test]
    fn the_apps_dockerfile() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../app/Dockerfile")).unwrap();
        assert_eq!(
            bases(&text, &[]),
            ["docker.io/library/rust:1.95-slim-bookworm", "docker.io/library/debian:bookworm-slim"]
        );
        assert_eq!(bases(&text, &[("RUST_IMAGE", "r:1"), ("RUNTIME_IMAGE", "d:2")]), ["r:1", "d:2"]);
    }

    #[test]
    fn stages_scratch_platforms_and_continuations() {
        let text = "# comment\nARG BASE=alpine:3\nARG TAG\nFROM --platform=$BUILDPLATFORM ${BASE} AS build\nRUN x\nFROM \\\n  build AS test\nFROM scratch\nFROM 0\nFROM ${REGISTRY:-docker.io}/lib/thing:${TAG:-1}\nFROM alpine:3\n";
        assert_eq!(bases(text, &[]), ["alpine:3", "docker.io/lib/thing:1"]);
        assert_eq!(bases(text, &[("TAG", "2"), ("BASE", "debian")]), ["debian", "docker.io/lib/thing:2", "alpine:3"]);
    }

    #[test]
    fn an_empty_reference_is_an_error() {
        let err = base_images("ARG BASE\nFROM $BASE\n", &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("line 2: FROM $BASE is empty after build arguments"), "{err}");
    }

    #[test]
    fn expansions() {
        let vars: BTreeMap<String, String> =
            [("A".to_string(), "1".to_string()), ("E".to_string(), String::new())].into();
        assert_eq!(substitute("x$A-${A}-${B:-d}-${A:+y}-${E:-e}-${B:+z}-$", &vars), "x1-1-d-y-e--$");
    }
}
