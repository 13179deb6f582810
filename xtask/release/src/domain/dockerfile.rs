//! What a Dockerfile builds on: the image each `FROM` names, with build arguments
//! substituted as the builder does (global `ARG`s before the first `FROM`, overridden by
//! the build's arguments). `scratch` and references to earlier stages are not images.

use std::collections::BTreeMap;

/// A base image reference and the digest it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub reference: String,
    pub digest: String,
}

use anyhow::{Result, bail};

/// The images the `FROM` lines of `dockerfile` name, in order, without duplicates.
pub fn base_images(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Result<Vec<String>> {
    Ok(from_images(dockerfile, build_args)?.into_iter().map(|(image, _)| image).collect())
}

/// The global build arguments that name a base image whole (`FROM ${NAME}` or `FROM $NAME`),
/// each with the image it names given `build_args`, in order, without duplicates: what a
/// build can point at another image (a mirror's, a stand-in) without editing the file.
pub fn base_image_args(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Result<Vec<(String, String)>> {
    let mut args: Vec<(String, String)> = vec![];
    for (image, arg) in from_images(dockerfile, build_args)? {
        if let Some(arg) = arg
            && !args.iter().any(|(name, _)| *name == arg)
        {
            args.push((arg, image));
        }
    }
    Ok(args)
}

/// Each image a `FROM` line names, with the global argument that names it whole, if one does.
fn from_images(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Result<Vec<(String, Option<String>)>> {
    let mut globals: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = vec![];
    let mut bases: Vec<(String, Option<String>)> = vec![];
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
                if !is_stage && !image.eq_ignore_ascii_case("scratch") && !bases.iter().any(|(b, _)| *b == image) {
                    let whole =
                        reference.strip_prefix("${").and_then(|r| r.strip_suffix('}')).or(reference.strip_prefix('$'));
                    let arg = whole.filter(|name| globals.contains_key(*name)).map(str::to_string);
                    bases.push((image, arg));
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

/// What one stage of a Dockerfile is built from, as far as build cache goes: its
/// instructions and those of the stages it builds on, and the context paths they copy or
/// bind. [`stage_inputs`] returns `None` when that cannot be told from the text alone (a
/// wildcard, a URL, a variable, the whole context, an external image as a source): the
/// caller then keys the cache by the whole context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageInputs {
    /// The global `ARG`s and the instructions of the stage and of the stages it builds on.
    pub instructions: Vec<String>,
    /// Context paths (files or directories), relative to the context root, sorted.
    pub sources: Vec<String>,
}

/// The inputs of stage `name` (case-insensitive), or `None` when they are not literal
/// paths; an error when the Dockerfile has no such stage.
pub fn stage_inputs(dockerfile: &str, name: &str) -> Result<Option<StageInputs>> {
    struct Stage {
        name: String,
        instructions: Vec<String>,
        /// Earlier stages this one builds on (`FROM`, `COPY --from`, `--mount from=`).
        uses: Vec<String>,
        sources: Vec<String>,
        literal: bool,
    }
    let mut globals = vec![];
    let mut stages: Vec<Stage> = vec![];
    for (_, line) in logical_lines(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next().map(str::to_ascii_uppercase) else { continue };
        if instruction == "FROM" {
            let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
            let mut stage = Stage {
                name: match rest.as_slice() {
                    [_, keyword, name, ..] if keyword.eq_ignore_ascii_case("as") => name.to_ascii_lowercase(),
                    _ => String::new(),
                },
                instructions: vec![line.trim().to_string()],
                uses: vec![],
                sources: vec![],
                literal: true,
            };
            if let Some(base) = rest.first() {
                stage.uses.push(base.to_ascii_lowercase());
            }
            stages.push(stage);
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            globals.push(line.trim().to_string());
            continue;
        };
        stage.instructions.push(line.trim().to_string());
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let flags: Vec<&str> = words.iter().copied().take_while(|w| w.starts_with("--")).collect();
        match instruction.as_str() {
            "COPY" | "ADD" => {
                if let Some(from) = flags.iter().find_map(|f| f.strip_prefix("--from=")) {
                    stage.uses.push(from.to_ascii_lowercase());
                    continue;
                }
                let operands = &words[flags.len()..];
                let paths: Vec<String> = match operands.first() {
                    Some(first) if first.starts_with('[') => {
                        match serde_json::from_str::<Vec<String>>(&operands.join(" ")) {
                            Ok(paths) => paths,
                            Err(_) => {
                                stage.literal = false;
                                continue;
                            }
                        }
                    }
                    _ => operands.iter().map(|w| w.to_string()).collect(),
                };
                let Some((_, sources)) = paths.split_last() else { continue };
                for source in sources {
                    stage.literal &= push_literal(&mut stage.sources, source);
                }
            }
            "RUN" => {
                for mount in flags.iter().filter_map(|f| f.strip_prefix("--mount=")) {
                    let options: BTreeMap<&str, &str> = mount.split(',').filter_map(|o| o.split_once('=')).collect();
                    if options.get("type").is_some_and(|t| *t != "bind") {
                        continue;
                    }
                    match options.get("from") {
                        Some(from) => stage.uses.push(from.to_ascii_lowercase()),
                        None => {
                            let source = options.get("source").or(options.get("src")).copied().unwrap_or(".");
                            stage.literal &= push_literal(&mut stage.sources, source);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    let wanted = name.to_ascii_lowercase();
    let Some(start) = stages.iter().position(|s| s.name == wanted) else {
        bail!("the Dockerfile has no stage named `{name}`");
    };
    // The stage and, transitively, the earlier stages it uses; anything else it uses is an
    // image: its digest is a base image's (FROM) or not known here (COPY --from).
    let mut inputs = StageInputs { instructions: globals, sources: vec![] };
    let mut todo = vec![start];
    let mut done = vec![];
    while let Some(index) = todo.pop() {
        if done.contains(&index) {
            continue;
        }
        done.push(index);
        let stage = &stages[index];
        if !stage.literal {
            return Ok(None);
        }
        inputs.sources.extend(stage.sources.iter().cloned());
        for (position, used) in stage.uses.iter().enumerate() {
            let earlier = stages[..index]
                .iter()
                .position(|s| !s.name.is_empty() && s.name == *used)
                .or_else(|| used.parse::<usize>().ok().filter(|i| *i < index));
            match earlier {
                Some(earlier) => todo.push(earlier),
                // FROM an image: a base image, keyed by its digest elsewhere.
                None if position == 0 => {}
                None => return Ok(None),
            }
        }
    }
    done.sort_unstable();
    for index in done {
        inputs.instructions.extend(stages[index].instructions.iter().cloned());
    }
    inputs.sources.sort();
    inputs.sources.dedup();
    Ok(Some(inputs))
}

/// The Dockerfile for the classic builder, which has no `RUN --mount`: the same text
/// without its cache mounts (`--mount=type=cache,...`), which change only how fast a step
/// runs, never what it makes. `None` when there is none. Other mounts stay, and the classic
/// builder refuses them with its own message.
pub fn without_cache_mounts(dockerfile: &str) -> Option<String> {
    let mut out = String::with_capacity(dockerfile.len());
    let mut changed = false;
    // Inside a RUN instruction's flags, across continuation lines.
    let mut in_run_flags = false;
    for line in dockerfile.split_inclusive('\n') {
        let trimmed = line.trim();
        let continues = trimmed.ends_with('\\');
        if trimmed.starts_with('#') || trimmed.is_empty() {
            out.push_str(line);
            continue;
        }
        let mut words: Vec<&str> = trimmed.trim_end_matches('\\').split_whitespace().collect();
        let first_is_run = !in_run_flags && words.first().is_some_and(|w| w.eq_ignore_ascii_case("run"));
        if first_is_run {
            in_run_flags = true;
        }
        if in_run_flags {
            let skip = usize::from(first_is_run);
            let flags_end = words[skip..].iter().position(|w| !w.starts_with("--")).map_or(words.len(), |i| i + skip);
            let before = words.len();
            let mut index = 0;
            words.retain(|w| {
                index += 1;
                !(index - 1 < flags_end && is_cache_mount(w))
            });
            if words.len() != before {
                changed = true;
                let indent = &line[..line.len() - line.trim_start().len()];
                if words.is_empty() {
                    // The line held only cache mounts: drop it, its continuation with it.
                    in_run_flags = continues;
                    continue;
                }
                out.push_str(indent);
                out.push_str(&words.join(" "));
                out.push_str(if continues { " \\\n" } else { "\n" });
                in_run_flags = continues && flags_end == words.len() + (before - words.len());
                continue;
            }
            in_run_flags = continues && flags_end == words.len();
        }
        out.push_str(line);
    }
    changed.then_some(out)
}

fn is_cache_mount(word: &str) -> bool {
    word.strip_prefix("--mount=").is_some_and(|spec| spec.split(',').any(|option| option == "type=cache"))
}

/// Adds `source` to `sources` if it is a plain relative path; false if it is not one.
fn push_literal(sources: &mut Vec<String>, source: &str) -> bool {
    let path = source.trim_start_matches("./").trim_end_matches('/');
    let plain = !path.is_empty()
        && path != "."
        && !path.contains(['*', '?', '[', '$', '\\'])
        && !path.contains("://")
        && !path.starts_with('/')
        && !path.split('/').any(|part| part == "..");
    if plain {
        sources.push(path.to_string());
    }
    plain
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

    #[test]
    fn the_arguments_that_name_a_base_image_whole_with_what_they_name() {
        let text = "ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm\nARG RUNTIME_IMAGE=debian:bookworm-slim\n\
                    ARG TAG=3\nFROM ${RUST_IMAGE} AS deps\nFROM deps AS build\nFROM $RUNTIME_IMAGE AS runtime\n\
                    FROM alpine:${TAG}\nFROM ${RUST_IMAGE}\n";
        let args = BTreeMap::from([("RUNTIME_IMAGE".to_string(), "d:2".to_string())]);
        assert_eq!(
            base_image_args(text, &args).unwrap(),
            [
                ("RUST_IMAGE".to_string(), "docker.io/library/rust:1.95-slim-bookworm".to_string()),
                ("RUNTIME_IMAGE".to_string(), "d:2".to_string())
            ]
        );
    }

    fn bases(dockerfile: &str, args: &[(&str, &str)]) -> Vec<String> {
        let args = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        base_images(dockerfile, &args).unwrap()
    }

    #[test]
    fn the_apps_dockerfile() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../app/Dockerfile")).unwrap();
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
    fn a_stage_and_what_it_builds_on() {
        let text = "ARG BASE=rust\nFROM $BASE AS chef\nCOPY Cargo.toml Cargo.lock ./\nFROM chef AS deps\nRUN --mount=type=cache,target=/c --mount=type=bind,source=vendor,target=v cargo build\nCOPY [\"crates/a/Cargo.toml\", \"crates/a/\"]\nFROM deps AS build\nCOPY src src\nFROM debian AS runtime\nCOPY --from=build /app /app\n";
        let inputs = stage_inputs(text, "deps").unwrap().unwrap();
        assert_eq!(inputs.sources, ["Cargo.lock", "Cargo.toml", "crates/a/Cargo.toml", "vendor"]);
        assert_eq!(inputs.instructions[0], "ARG BASE=rust");
        assert_eq!(inputs.instructions.len(), 6, "{:?}", inputs.instructions);
        let build = stage_inputs(text, "BUILD").unwrap().unwrap();
        assert!(build.sources.contains(&"src".to_string()));
        // The runtime stage copies from build: it has build's inputs, and no base of its own.
        assert_eq!(stage_inputs(text, "runtime").unwrap().unwrap().sources, build.sources);
        assert!(stage_inputs(text, "nope").unwrap_err().to_string().contains("no stage named `nope`"));
    }

    #[test]
    fn stage_inputs_that_are_not_literal_paths() {
        for text in [
            "FROM a AS s\nCOPY . .\n",
            "FROM a AS s\nCOPY *.toml ./\n",
            "FROM a AS s\nADD https://example.com/x /x\n",
            "FROM a AS s\nCOPY --from=other:1 /x /x\n",
            "FROM a AS s\nRUN --mount=type=bind,target=/src make\n",
            "FROM a AS s\nCOPY $DIR /x\n",
        ] {
            assert_eq!(stage_inputs(text, "s").unwrap(), None, "{text}");
        }
    }

    #[test]
    fn cache_mounts_go_for_the_classic_builder() {
        let text = "FROM a\nRUN --mount=type=cache,target=/r \\\n    --mount=type=cache,target=/t,sharing=locked \\\n    cargo build --release \\\n    && cp x y\nRUN --mount=type=secret,id=s --mount=type=cache,target=/c make\nRUN echo --mount=type=cache,target=/x\n";
        assert_eq!(
            without_cache_mounts(text).unwrap(),
            "FROM a\nRUN \\\n    cargo build --release \\\n    && cp x y\nRUN --mount=type=secret,id=s make\nRUN echo --mount=type=cache,target=/x\n"
        );
        assert_eq!(without_cache_mounts("FROM a\nRUN make\n"), None);
    }

    #[test]
    fn expansions() {
        let vars: BTreeMap<String, String> =
            [("A".to_string(), "1".to_string()), ("E".to_string(), String::new())].into();
        assert_eq!(substitute("x$A-${A}-${B:-d}-${A:+y}-${E:-e}-${B:+z}-$", &vars), "x1-1-d-y-e--$");
    }
}
