//! Parity with the docker CLI. Each case writes a tree and a `.dockerignore`, builds
//! `FROM scratch` + `COPY . /ctx/` four times — with `DOCKER_BUILDKIT=0 docker build` and with
//! `BuildContext::stream()` sent through bollard (the classic builder), then with
//! `docker buildx build` and with xtask's BuildKit build (the context over a session) — and
//! compares what landed in `/ctx` of each image (paths, kinds, modes, link targets, file
//! contents), classic with classic and BuildKit with BuildKit. Several cases also compare the
//! classic builds with a list written out here, so that both sides being wrong the same way
//! fails too.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::Output,
};

use bollard::{Docker, query_parameters::BuildImageOptionsBuilder};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};
use xtask_release::{clients::docker::BuilderChoice, domain::context::BuildContext};

use crate::support::{docker_or_skip, runtime, unique};

const DOCKERFILE: &str = "FROM scratch\nCOPY . /ctx/\n";

/// One thing in a test tree, at a path relative to the context directory.
enum Item {
    File(u32),
    Dir(u32),
    Symlink(&'static str),
    /// A hard link to the file at this (context-relative) path.
    HardLink(&'static str),
}

use Item::*;

/// The tree most cases share: something for every rule below to bite on.
fn standard_tree() -> Vec<(String, Item)> {
    let mut tree: Vec<(String, Item)> = [
        ("Dockerfile", File(0o644)),
        ("README.md", File(0o644)),
        ("[draft].md", File(0o644)),
        ("a/b/foo", File(0o644)),
        ("app.log", File(0o644)),
        ("build/out.o", File(0o644)),
        ("build/sub/artifact.o", File(0o644)),
        ("dir/foo/bar.txt", File(0o644)),
        ("docs/build/index.html", File(0o644)),
        ("empty", Dir(0o755)),
        ("file1.txt", File(0o644)),
        ("fileA.txt", File(0o644)),
        ("fileb.txt", File(0o644)),
        ("filed.txt", File(0o644)),
        ("foo", File(0o644)),
        ("hard.txt", HardLink("README.md")),
        ("keep/deep/more.txt", File(0o644)),
        ("keep/important.txt", File(0o644)),
        ("link-dir", Symlink("src")),
        ("link-inside", Symlink("src/main.rs")),
        ("link-outside-abs", Symlink("/nonexistent/outside.txt")),
        ("link-outside-rel", Symlink("../outside.txt")),
        ("logs/debug.log", File(0o644)),
        ("logs/keep.txt", File(0o644)),
        ("node_modules/pkg/index.js", File(0o644)),
        ("private", Dir(0o700)),
        ("private/key", File(0o600)),
        ("run.sh", File(0o755)),
        ("src/cache.tmp", File(0o644)),
        ("src/main.rs", File(0o644)),
        ("src/nested/deep/x.tmp", File(0o644)),
        ("web/app.js", File(0o644)),
        ("web/node_modules/pkg/index.js", File(0o644)),
        ("weird?name", File(0o644)),
    ]
    .into_iter()
    .map(|(path, item)| (path.to_string(), item))
    .collect();
    // Over 100 bytes: GNU long-name and long-link entries.
    tree.push((format!("long/{}/{}", "d".repeat(60), "f".repeat(60)), File(0o644)));
    tree.push(("long/link".to_string(), Symlink(LONG_TARGET)));
    tree
}

const LONG_TARGET: &str = "../ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt";

/// Everything the standard tree puts in `/ctx` when nothing is ignored (and no `.dockerignore`).
fn everything() -> Vec<String> {
    let long_dir = format!("ctx/long/{}", "d".repeat(60));
    let mut lines: Vec<String> = [
        "f 644 ctx/Dockerfile",
        "f 644 ctx/README.md",
        "f 644 ctx/[draft].md",
        "d 755 ctx/a",
        "d 755 ctx/a/b",
        "f 644 ctx/a/b/foo",
        "f 644 ctx/app.log",
        "d 755 ctx/build",
        "f 644 ctx/build/out.o",
        "d 755 ctx/build/sub",
        "f 644 ctx/build/sub/artifact.o",
        "d 755 ctx/dir",
        "d 755 ctx/dir/foo",
        "f 644 ctx/dir/foo/bar.txt",
        "d 755 ctx/docs",
        "d 755 ctx/docs/build",
        "f 644 ctx/docs/build/index.html",
        "d 755 ctx/empty",
        "f 644 ctx/file1.txt",
        "f 644 ctx/fileA.txt",
        "f 644 ctx/fileb.txt",
        "f 644 ctx/filed.txt",
        "f 644 ctx/foo",
        "h 644 ctx/hard.txt -> ctx/README.md",
        "d 755 ctx/keep",
        "d 755 ctx/keep/deep",
        "f 644 ctx/keep/deep/more.txt",
        "f 644 ctx/keep/important.txt",
        "l 777 ctx/link-dir -> src",
        "l 777 ctx/link-inside -> src/main.rs",
        "l 777 ctx/link-outside-abs -> /nonexistent/outside.txt",
        "l 777 ctx/link-outside-rel -> ../outside.txt",
        "d 755 ctx/logs",
        "f 644 ctx/logs/debug.log",
        "f 644 ctx/logs/keep.txt",
        "d 755 ctx/long",
        "d 755 ctx/node_modules",
        "d 755 ctx/node_modules/pkg",
        "f 644 ctx/node_modules/pkg/index.js",
        "d 700 ctx/private",
        "f 600 ctx/private/key",
        "f 755 ctx/run.sh",
        "d 755 ctx/src",
        "f 644 ctx/src/cache.tmp",
        "f 644 ctx/src/main.rs",
        "d 755 ctx/src/nested",
        "d 755 ctx/src/nested/deep",
        "f 644 ctx/src/nested/deep/x.tmp",
        "d 755 ctx/web",
        "f 644 ctx/web/app.js",
        "d 755 ctx/web/node_modules",
        "d 755 ctx/web/node_modules/pkg",
        "f 644 ctx/web/node_modules/pkg/index.js",
        "f 644 ctx/weird?name",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    lines.push(format!("d 755 {long_dir}"));
    lines.push(format!("f 644 {long_dir}/{}", "f".repeat(60)));
    lines.push(format!("l 777 ctx/long/link -> {LONG_TARGET}"));
    lines.sort_by(|a, b| path_of(a).cmp(path_of(b)));
    lines
}

/// `everything()` without the lines whose path is one of `gone` or below one of them, plus `added`.
fn everything_but(gone: &[&str], added: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = everything()
        .into_iter()
        .filter(|line| {
            let path = path_of(line);
            !gone.iter().any(|g| {
                let g = format!("ctx/{g}");
                path == g || path.starts_with(&format!("{g}/"))
            })
        })
        .chain(added.iter().map(|s| s.to_string()))
        .collect();
    lines.sort_by(|a, b| path_of(a).cmp(path_of(b)));
    lines
}

fn path_of(line: &str) -> &str {
    let path = &line[6..];
    path.split(" -> ").next().unwrap_or(path)
}

#[derive(Clone, Copy, PartialEq)]
enum DockerfileAt {
    /// `Dockerfile` at the context root.
    Root,
    /// Inside the context at this relative path.
    Inside(&'static str),
    /// Beside the context directory, given as `-f ../docker/Dockerfile`.
    Outside,
}

/// Which docker CLIs must agree with us on a case.
#[derive(Clone, Copy, PartialEq)]
enum Cli {
    Any,
    /// Behaviour of moby/patternmatcher (docker CLI 23 and later); the 20.10 CLI differs.
    PatternMatcher,
}

struct Case {
    name: &'static str,
    dockerignore: Option<&'static str>,
    dockerfile: DockerfileAt,
    expected: Option<Vec<String>>,
    cli: Cli,
}

impl Case {
    fn new(name: &'static str, dockerignore: &'static str) -> Case {
        Case { name, dockerignore: Some(dockerignore), dockerfile: DockerfileAt::Root, expected: None, cli: Cli::Any }
    }
    fn expect(mut self, lines: Vec<String>) -> Case {
        self.expected = Some(lines);
        self
    }
}

#[test]
fn no_dockerignore_sends_everything_with_modes_and_links() {
    parity(Case { dockerignore: None, ..Case::new("everything", "") }.expect(everything()));
}

#[test]
fn star_log_is_anchored_at_the_root() {
    // Comments, blank lines and padding are not patterns.
    let rules = "# logs are noise\n\n   *.log   \n";
    parity(Case::new("star-log", rules).expect(everything_but(&["app.log"], &["f 644 ctx/.dockerignore"])));
}

#[test]
fn double_star_tmp_reaches_every_depth() {
    parity(
        Case::new("double-star-tmp", "**/*.tmp\n")
            .expect(everything_but(&["src/cache.tmp", "src/nested/deep/x.tmp"], &["f 644 ctx/.dockerignore"])),
    );
}

#[test]
fn everything_but_keep() {
    // The Dockerfile and .dockerignore are sent (the daemon needs them) and then dropped
    // by the daemon, because the rules exclude them.
    // `keep` and `keep/deep` are not sent themselves; COPY creates them.
    parity(Case::new("all-but-keep", "**\n!keep/**\n").expect(vec![
        "d 755 ctx/keep".into(),
        "d 755 ctx/keep/deep".into(),
        "f 644 ctx/keep/deep/more.txt".into(),
        "f 644 ctx/keep/important.txt".into(),
    ]));
}

#[test]
fn exception_reincludes_a_file_below_an_excluded_directory() {
    parity(
        Case::new("dir-exception", "build\n!build/sub/artifact.o\n")
            .expect(everything_but(&["build/out.o"], &["f 644 ctx/.dockerignore"])),
    );
    // The excluded directory's own entry (mode 700) is not sent: COPY recreates it as 755.
    parity(Case::new("dir-exception-mode", "private\n!private/key\n").expect(everything_but(
        &["private"],
        &["f 644 ctx/.dockerignore", "d 755 ctx/private", "f 600 ctx/private/key"],
    )));
}

#[test]
fn the_last_matching_rule_wins() {
    // README.md is excluded again by the last rule; `logs` is excluded but entered for the
    // exception (its own entry is not sent; COPY recreates it). Without README.md, its hard
    // link arrives as a plain file.
    parity(Case::new("last-wins", "*.md\n!README.md\nREADME*\nlogs\n!logs/keep.txt\n").expect(everything_but(
        &["README.md", "[draft].md", "logs/debug.log", "hard.txt"],
        &["f 644 ctx/.dockerignore", "f 644 ctx/hard.txt"],
    )));
}

#[test]
fn root_anchoring_slash_plain_and_star() {
    parity(Case::new("anchor-slash", "/foo\n").expect(everything_but(&["foo"], &["f 644 ctx/.dockerignore"])));
    parity(Case::new("anchor-plain", "foo\n"));
    parity(Case::new("anchor-star", "*/foo\n").expect(everything_but(&["dir/foo"], &["f 644 ctx/.dockerignore"])));
}

#[test]
fn directory_rules_with_and_without_slash() {
    parity(Case::new("dir-slash", "build/\n").expect(everything_but(&["build"], &["f 644 ctx/.dockerignore"])));
    // A symbolic link to a directory is not that directory.
    parity(Case::new("dir-plain", "build\nsrc\ndocs/build\n"));
}

#[test]
fn question_mark_and_classes() {
    parity(
        Case::new("classes", "file[a-c].txt\n?pp.log\nfile[^0-9a-z].txt\n")
            .expect(everything_but(&["fileb.txt", "app.log", "fileA.txt"], &["f 644 ctx/.dockerignore"])),
    );
}

#[test]
fn dot_slash_prefix_is_removed() {
    parity(Case::new("dot-slash", "./src/main.rs\n./logs/\n"));
}

#[test]
fn excluded_dockerfile_and_dockerignore_are_sent_then_dropped_by_the_daemon() {
    parity(Case::new("exclude-build-files", "Dockerfile\n.dockerignore\n*.md\n").expect(
        // With README.md not sent, its hard link arrives as a plain file.
        everything_but(&["Dockerfile", "README.md", "[draft].md", "hard.txt"], &["f 644 ctx/hard.txt"]),
    ));
}

#[test]
fn dockerfile_in_an_excluded_directory_is_still_sent() {
    parity(Case {
        dockerfile: DockerfileAt::Inside("build/sub/Dockerfile"),
        ..Case::new("dockerfile-in-excluded-dir", "build\n")
    });
}

#[test]
fn nested_node_modules() {
    parity(
        Case::new("node-modules", "**/node_modules\n")
            .expect(everything_but(&["node_modules", "web/node_modules"], &["f 644 ctx/.dockerignore"])),
    );
}

#[test]
fn backslash_escapes_special_characters() {
    parity(
        Case::new("escapes", "\\[draft\\].md\nweird\\?name\n")
            .expect(everything_but(&["[draft].md", "weird?name"], &["f 644 ctx/.dockerignore"])),
    );
}

#[test]
fn symlinks_match_by_their_own_name() {
    parity(Case::new("symlink-rules", "link-*\n!link-inside\nsrc/main.rs\n"));
}

#[test]
fn exception_patterns_open_an_excluded_directory_only_by_prefix() {
    // moby enters an excluded directory only if an exception starts with its path, so
    // `!**/important.txt` alone cannot bring back `keep/important.txt` ...
    parity(
        Case::new("exception-no-prefix", "keep\n!**/important.txt\n")
            .expect(everything_but(&["keep"], &["f 644 ctx/.dockerignore"])),
    );
    // ... but once another exception opens `keep`, it applies inside.
    parity(
        Case::new("exception-prefix", "keep\n!**/important.txt\n!keep/deep/more.txt\n")
            .expect(everything_but(&[], &["f 644 ctx/.dockerignore"])),
    );
}

#[test]
fn dockerfile_outside_the_context() {
    let case = Case { dockerfile: DockerfileAt::Outside, ..Case::new("outside-dockerfile", "*.log\nDockerfile\n") };
    // The context's own Dockerfile is excluded here: only the outside one is built from.
    parity(case.expect(everything_but(&["app.log", "Dockerfile"], &["f 644 ctx/.dockerignore"])));
}

#[test]
fn moby_patternmatcher_corner_cases() {
    // The walk uses `MatchesUsingParentResults`: the second `keep` is not credited to `keep/deep`.
    parity(Case {
        cli: Cli::PatternMatcher,
        ..Case::new("parent-results", "keep\n!keep/deep\nkeep\n")
            .expect(everything_but(&["keep/important.txt"], &["f 644 ctx/.dockerignore"]))
    });
    // `!logs` is never evaluated for the directory `logs` (nothing had excluded it yet), so it
    // does not re-include `logs/keep.txt` below it; the 20.10 CLI sent it.
    parity(Case {
        cli: Cli::PatternMatcher,
        ..Case::new("last-wins-reversed", "README*\n!*.md\nlogs/keep.txt\n!logs\n")
            .expect(everything_but(&["logs/keep.txt"], &["f 644 ctx/.dockerignore"]))
    });
    // `**foo` is a plain suffix test: it also drops `a/b/foo` and `dir/foo` (and `foo`).
    parity(Case {
        cli: Cli::PatternMatcher,
        ..Case::new("suffix-quirk", "**foo\n")
            .expect(everything_but(&["foo", "a/b/foo", "dir/foo"], &["f 644 ctx/.dockerignore"]))
    });
}

/// Builds the case both ways and compares.
fn parity(case: Case) {
    let test = format!("dockerignore parity `{}`", case.name);
    if !docker_or_skip(&test) {
        return;
    }
    let work = Work::new(case.name);
    let ctx_dir = work.0.join("ctx");
    write_tree(&ctx_dir, &standard_tree());
    if let Some(rules) = case.dockerignore {
        fs::write(ctx_dir.join(".dockerignore"), rules).unwrap();
        set_mode(&ctx_dir.join(".dockerignore"), 0o644);
    }
    let dockerfile = match case.dockerfile {
        DockerfileAt::Root => ctx_dir.join("Dockerfile"),
        DockerfileAt::Inside(rel) => ctx_dir.join(rel),
        DockerfileAt::Outside => work.0.join("docker/Dockerfile"),
    };
    fs::create_dir_all(dockerfile.parent().unwrap()).unwrap();
    fs::write(&dockerfile, DOCKERFILE).unwrap();
    for file in [ctx_dir.join("Dockerfile"), dockerfile.clone()] {
        set_mode(&file, 0o644);
    }

    let sh = Shell::new().unwrap();
    let mut cleanup = Cleanup::default();
    let tag = unique(&format!("xtask-it-dockerignore-{}", case.name));
    let (cli_tag, our_tag) = (format!("{tag}:cli"), format!("{tag}:xtask"));

    // (a) the docker CLI, with the Dockerfile given like `-f ../docker/Dockerfile`.
    let file_args: &[String] = &match case.dockerfile {
        DockerfileAt::Root => vec![],
        DockerfileAt::Inside(rel) => vec!["-f".into(), format!("ctx/{rel}")],
        DockerfileAt::Outside => vec!["-f".into(), "docker/Dockerfile".into()],
    };
    sh.change_dir(&work.0);
    // No cache on either side: a cached image shared by two cases could be removed by the
    // other case's cleanup in the middle of a build.
    let build = cmd!(sh, "docker build -q --no-cache -t {cli_tag} {file_args...} ctx").env("DOCKER_BUILDKIT", "0");
    cleanup.images.push(cli_tag.clone());
    check(&format!("{build}"), build.quiet().ignore_status().output().unwrap());

    // (b) BuildContext::stream() through bollard.
    let context = BuildContext::new(&ctx_dir, &dockerfile).unwrap();
    cleanup.images.push(our_tag.clone());
    runtime().block_on(build_with_stream(&context, &our_tag)).unwrap_or_else(|e| panic!("{test}: {e}"));

    let cli = listing(&sh, &cli_tag, &mut cleanup);
    let ours = listing(&sh, &our_tag, &mut cleanup);
    let modern = cli_speaks_patternmatcher(&sh);
    if case.cli == Cli::PatternMatcher && !modern {
        eprintln!(
            "{test}: the docker CLI predates moby/patternmatcher (23.0), which this case follows; \
             comparing with the expected list only"
        );
    } else {
        assert_eq!(
            ours.lines.join("\n"),
            cli.lines.join("\n"),
            "{test}: what BuildContext sent (left) differs from what the docker CLI sent (right)"
        );
        let mut cli_contents = cli.contents.clone();
        let mut our_contents = ours.contents.clone();
        if case.dockerfile == DockerfileAt::Outside {
            // Both name their generated Dockerfile in .dockerignore, and the names differ.
            cli_contents.remove("ctx/.dockerignore");
            our_contents.remove("ctx/.dockerignore");
        }
        assert_eq!(our_contents, cli_contents, "{test}: file contents differ");
    }
    if let Some(expected) = &case.expected {
        assert_eq!(ours.lines.join("\n"), expected.join("\n"), "{test}: not the expected files (left: sent)");
    }

    // (c) BuildKit: `docker buildx build` (buildx reads the context over a session, as we do)
    // and xtask's BuildKit build; the `.dockerignore` rules are the Dockerfile frontend's.
    let (cli_bk_tag, our_bk_tag) = (format!("{tag}:cli-buildkit"), format!("{tag}:xtask-buildkit"));
    let buildx = cmd!(sh, "docker buildx build -q --no-cache -t {cli_bk_tag} {file_args...} ctx");
    let buildx_line = format!("{buildx}");
    cleanup.images.push(cli_bk_tag.clone());
    let output = buildx.quiet().ignore_status().output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("unknown command") && !stderr.contains("is not a docker command"),
        "{test}: the docker CLI has no buildx plugin; install docker-buildx (Debian trixie's package has it)"
    );
    check(&buildx_line, output);
    cleanup.images.push(our_bk_tag.clone());
    runtime()
        .block_on(async {
            let docker = xtask_release::clients::docker::connect().await.map_err(|e| format!("{e:#}"))?;
            xtask_release::clients::docker::build_context(&docker, &context, &our_bk_tag, BuilderChoice::Buildkit)
                .await
                .map_err(|e| format!("{e:#}"))
        })
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let cli_bk = listing(&sh, &cli_bk_tag, &mut cleanup);
    let ours_bk = listing(&sh, &our_bk_tag, &mut cleanup);
    assert_eq!(
        ours_bk.lines.join("\n"),
        cli_bk.lines.join("\n"),
        "{test}: what xtask's BuildKit build put in the image (left) differs from docker buildx's (right)"
    );
    // fsutil's sender (in buildx) walks with `MatchesUsingParentResults` but opens a file with
    // `MatchesOrParentMatches`; where the two disagree (patterns `keep`, `!keep/deep`, `keep`)
    // it sends the file's entry without its bytes, and the file lands empty. xtask sends the
    // bytes, as both classic builds do: the one difference allowed.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let mut cli_bk_contents = cli_bk.contents.clone();
    for (path, hash) in cli_bk_contents.iter_mut() {
        let classic = ours.contents.get(path);
        if hash == EMPTY && classic.is_some_and(|c| c != EMPTY) && ours_bk.contents.get(path) == classic {
            eprintln!("{test}: buildx sent {path} empty (fsutil's open filter); xtask sent its bytes");
            *hash = classic.unwrap().clone();
        }
    }
    assert_eq!(ours_bk.contents, cli_bk_contents, "{test}: file contents differ between the BuildKit builds");
}

async fn build_with_stream(context: &BuildContext, tag: &str) -> Result<(), String> {
    let docker = Docker::connect_with_defaults().map_err(|e| format!("cannot reach the daemon: {e}"))?;
    let docker = docker.negotiate_version().await.map_err(|e| format!("cannot negotiate the API version: {e}"))?;
    let options =
        BuildImageOptionsBuilder::new().t(tag).dockerfile(context.dockerfile_name()).rm(true).nocache(true).build();
    let body = bollard::body_try_stream(context.stream());
    let mut stream = docker.build_image(options, None, Some(body));
    let mut output = String::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| format!("build failed: {e}\n{output}"))?;
        if let Some(detail) = info.error_detail {
            return Err(format!("build failed: {}\n{output}", detail.message.unwrap_or_default()));
        }
        output.push_str(info.stream.as_deref().unwrap_or_default());
    }
    Ok(())
}

/// What is under `/ctx` in an image: sorted "kind mode path[ -> target]" lines and file hashes.
struct Listing {
    lines: Vec<String>,
    contents: BTreeMap<String, String>,
}

fn listing(sh: &Shell, tag: &str, cleanup: &mut Cleanup) -> Listing {
    // A scratch image has no command; `docker create` needs one, and never runs it.
    let create = cmd!(sh, "docker create {tag} never-run");
    let id = String::from_utf8(check(&format!("{create}"), create.quiet().ignore_status().output().unwrap()).stdout)
        .unwrap()
        .trim()
        .to_string();
    cleanup.containers.push(id.clone());
    let export = cmd!(sh, "docker export {id}");
    let tar = check(&format!("{export}"), export.quiet().ignore_status().output().unwrap()).stdout;

    let mut lines = Vec::new();
    let mut contents = BTreeMap::new();
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
        if !path.starts_with("ctx/") {
            continue;
        }
        let header = entry.header();
        let mode = header.mode().unwrap() & 0o7777;
        let target = entry.link_name().unwrap().map(|t| t.to_string_lossy().into_owned());
        let line = match header.entry_type() {
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                contents.insert(path.clone(), format!("{:x}", Sha256::digest(&data)));
                format!("f {mode:o} {path}")
            }
            tar::EntryType::Directory => format!("d {mode:o} {path}"),
            tar::EntryType::Symlink => format!("l {mode:o} {path} -> {}", target.unwrap_or_default()),
            tar::EntryType::Link => format!("h {mode:o} {path} -> {}", target.unwrap_or_default()),
            other => format!("? {mode:o} {path} ({other:?})"),
        };
        lines.push(line);
    }
    lines.sort_by(|a, b| path_of(a).cmp(path_of(b)));
    Listing { lines, contents }
}

/// Is the docker CLI on PATH one that uses moby/patternmatcher (23.0 or later)?
fn cli_speaks_patternmatcher(sh: &Shell) -> bool {
    let format = "{{.Client.Version}}";
    let version = cmd!(sh, "docker version --format {format}").quiet().read().unwrap_or_default();
    version.split('.').next().and_then(|major| major.parse::<u32>().ok()).is_some_and(|major| major >= 23)
}

/// Panics with the command, status, stdout and stderr unless it succeeded.
#[track_caller]
fn check(command: &str, output: Output) -> Output {
    assert!(
        output.status.success(),
        "command failed: {command}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn write_tree(root: &Path, tree: &[(String, Item)]) {
    fs::create_dir_all(root).unwrap();
    for (rel, item) in tree {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        match item {
            File(_) => fs::write(&path, format!("content of {rel}\n")).unwrap(),
            Dir(_) => fs::create_dir_all(&path).unwrap(),
            Symlink(target) => symlink(target, &path).unwrap(),
            HardLink(original) => fs::hard_link(root.join(original), &path).unwrap(),
        }
    }
    // Directories made on the way get 755 whatever the umask; listed ones get their own mode.
    set_dir_modes(root);
    for (rel, item) in tree {
        match item {
            File(mode) | Dir(mode) => set_mode(&root.join(rel), *mode),
            Symlink(_) | HardLink(_) => {}
        }
    }
}

fn set_dir_modes(dir: &Path) {
    set_mode(dir, 0o755);
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            set_dir_modes(&entry.path());
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A scratch directory for one case, removed on drop.
struct Work(PathBuf);

impl Work {
    fn new(name: &str) -> Work {
        let dir = std::env::temp_dir().join(unique(&format!("xtask-it-dockerignore-{name}")));
        fs::create_dir_all(&dir).unwrap();
        Work(dir)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Containers and images a case made, removed on drop (also when the case fails).
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(sh) = Shell::new() else { return };
        let (containers, images) = (&self.containers, &self.images);
        if !containers.is_empty() {
            let _ = cmd!(sh, "docker rm -f {containers...}").quiet().ignore_stdout().ignore_stderr().run();
        }
        if !images.is_empty() {
            let _ = cmd!(sh, "docker rmi -f {images...}").quiet().ignore_stdout().ignore_stderr().run();
        }
    }
}
