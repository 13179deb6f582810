//! Bad input, table-driven: each case gets its exit code, one readable `error:` line naming
//! what to fix (no debug dump), stdout empty or valid JSON, and nothing changed: no image in
//! the fixture's ECR repository, no file outside `target/`.

use crate::support::{Fixture, create_repository, docker_or_skip, local_ecr, local_stack, runtime, unique};

struct Case {
    name: &'static str,
    /// Edits the fixture before its second commit (the first is a sound workspace).
    setup: fn(&Fixture),
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    code: i32,
    says: &'static str,
    /// Whether the whole of stderr is the error line (no progress printed before it).
    only_the_error: bool,
}

const NO_AWS_FILES: &[(&str, &str)] =
    &[("AWS_CONFIG_FILE", "/nonexistent/config"), ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")];

fn settings(repo: &Fixture, from: &str, to: &str) {
    let text = std::fs::read_to_string(repo.path().join("Cargo.toml")).unwrap();
    assert!(text.contains(from), "the fixture's settings hold `{from}`");
    repo.write("Cargo.toml", &text.replacen(from, to, 1));
}

fn dev_stage(repo: &Fixture, body: &str) {
    repo.append("Cargo.toml", &format!("\n[workspace.metadata.xtask.stages.dev]\n{body}"));
}

const CASES: &[Case] = &[
    Case {
        name: "an unknown key",
        setup: |r| settings(r, "port = 8080", "port = 8080\nrepo = 1"),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "images[0].repo: unknown field `repo`",
        only_the_error: true,
    },
    Case {
        name: "a wrong type",
        setup: |r| settings(r, "port = 8080", "port = \"http\""),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "images[0].port: invalid type: string \"http\", expected u16",
        only_the_error: true,
    },
    Case {
        name: "a duplicate image",
        setup: |r| {
            let t = std::fs::read_to_string(r.path().join("Cargo.toml")).unwrap();
            let image = &t[t.find("[[").unwrap()..t.find("port = 8080").unwrap() + 11];
            r.append("Cargo.toml", &format!("\n{image}\n"));
        },
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "images[1].name: image `svc` is configured twice",
        only_the_error: true,
    },
    Case {
        name: "a context outside the repository",
        setup: |r| settings(r, "context = \"svc\"", "context = \"../svc\""),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "images[0].context: `../svc` is outside the workspace",
        only_the_error: true,
    },
    Case {
        name: "a build argument with a newline",
        setup: |r| settings(r, "port = 8080", "port = 8080\nbuild-args = { A = \"1\\n2\" }"),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "images[0].build-args.A: a build argument cannot hold a line break",
        only_the_error: true,
    },
    Case {
        name: "a platform that is not served",
        setup: |r| settings(r, "port = 8080", "port = 8080\nplatform = \"windows/amd64\""),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "images[0].platform: `windows/amd64` is not supported",
        only_the_error: true,
    },
    Case {
        name: "settings that are not TOML",
        setup: |r| r.append("Cargo.toml", "\n[workspace.metadata.xtask.stages\n"),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "unclosed table",
        only_the_error: true,
    },
    Case {
        name: "a missing context directory",
        setup: |r| settings(r, "context = \"svc\"", "context = \"nowhere\""),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "image `svc`: cannot read its build context",
        only_the_error: true,
    },
    Case {
        name: "a context that is a symbolic link out of the workspace",
        setup: |r| {
            std::os::unix::fs::symlink("..", r.path().join("up")).unwrap();
            settings(r, "context = \"svc\"", "context = \"up\"");
        },
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "images[0].context: `up` leads to",
        only_the_error: true,
    },
    Case {
        name: "a Dockerfile behind a symbolic link out of the workspace",
        setup: |r| {
            std::os::unix::fs::symlink("/etc/hostname", r.path().join("svc/Linkfile")).unwrap();
            settings(r, "dockerfile = \"svc/Dockerfile\"", "dockerfile = \"svc/Linkfile\"");
        },
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "images[0].dockerfile: `svc/Linkfile` leads to /etc/hostname, outside the workspace",
        only_the_error: true,
    },
    Case {
        name: "a missing Dockerfile",
        setup: |r| settings(r, "dockerfile = \"svc/Dockerfile\"", "dockerfile = \"svc/Nofile\""),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "svc/Nofile",
        only_the_error: true,
    },
    Case {
        name: "an invalid .dockerignore pattern",
        setup: |r| r.write("svc/.dockerignore", "[z-a]\n"),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "on line 1 of",
        only_the_error: true,
    },
    Case {
        name: "a Dockerfile syntax error",
        setup: |r| r.write("svc/Dockerfile", "FROMM scratch\n"),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "build of svc failed",
        only_the_error: false,
    },
    Case {
        name: "a failing RUN",
        setup: |r| r.write("svc/Dockerfile", "FROM xtask-local/debian:bookworm-minbase\nRUN false\n"),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "RUN false",
        only_the_error: false,
    },
    Case {
        name: "a missing base image",
        setup: |r| r.write("svc/Dockerfile", "FROM xtask-local/no-such-base:1\n"),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "base image xtask-local/no-such-base:1 is not in the Docker daemon",
        only_the_error: true,
    },
    Case {
        name: "a file name that is not UTF-8",
        setup: |r| {
            use std::os::unix::ffi::OsStrExt;
            std::fs::write(r.path().join("svc").join(std::ffi::OsStr::from_bytes(b"bad-\xff.txt")), "x").unwrap();
        },
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "its name is not valid UTF-8; rename it or exclude it in .dockerignore",
        only_the_error: true,
    },
    Case {
        name: "an unknown stage",
        setup: |_| {},
        args: &["push", "--json", "--stage", "staging"],
        env: &[],
        code: 2,
        says: "unknown stage `staging`; known stages: local",
        only_the_error: true,
    },
    Case {
        name: "an unknown image",
        setup: |_| {},
        args: &["push", "--json", "--image", "web"],
        env: &[],
        code: 2,
        says: "unknown image `web`; configured images: svc",
        only_the_error: true,
    },
    Case {
        name: "an unknown builder",
        setup: |_| {},
        args: &["push", "--json", "--builder", "kaniko"],
        env: &[],
        code: 2,
        says: "invalid value 'kaniko' for '--builder <BUILDER>'",
        only_the_error: false,
    },
    Case {
        name: "an unknown flag",
        setup: |_| {},
        args: &["push", "--jsn"],
        env: &[],
        code: 2,
        says: "unexpected argument '--jsn'",
        only_the_error: false,
    },
    Case {
        name: "a profile for the local stage",
        setup: |_| {},
        args: &["push", "--json", "--profile", "dev"],
        env: &[],
        code: 2,
        says: "--profile does not apply to the local stage",
        only_the_error: true,
    },
    Case {
        name: "an unknown profile",
        setup: |r| dev_stage(r, "profile = \"nope\"\nregion = \"eu-west-1\"\n"),
        args: &["push", "--json", "--stage", "dev"],
        env: NO_AWS_FILES,
        code: 2,
        says: "no usable AWS credentials from profile `nope`",
        only_the_error: true,
    },
    Case {
        name: "no region",
        setup: |r| dev_stage(r, "profile = \"nope\"\n"),
        args: &["push", "--json", "--stage", "dev"],
        env: NO_AWS_FILES,
        code: 2,
        says: "no AWS region for stage `dev`",
        only_the_error: true,
    },
    Case {
        name: "an unreachable AWS endpoint",
        setup: |r| dev_stage(r, "region = \"eu-west-1\"\n"),
        args: &["push", "--json", "--stage", "dev"],
        env: &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ],
        code: 2,
        says: "cannot reach the AWS API: connection refused",
        only_the_error: true,
    },
    Case {
        name: "an unreachable Docker daemon",
        setup: |r| r.write("svc/data.txt", "changed\n"),
        args: &["push", "--json"],
        env: &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        code: 2,
        says: "no Docker daemon answers at unix:///nonexistent/docker.sock",
        only_the_error: true,
    },
    Case {
        name: "a repository that does not exist",
        setup: |r| settings(r, "repository = ", "repository = \"it/none\"\n# was: "),
        args: &["push", "--json"],
        env: &[],
        code: 2,
        says: "ECR repository `it/none` does not exist; create it with `cargo xtask bootstrap --stage local`",
        only_the_error: true,
    },
    Case {
        name: "an unknown revision",
        setup: |_| {},
        args: &["check", "--json", "--rev", "no-such-branch"],
        env: &[],
        code: 2,
        says: "unknown revision `no-such-branch`",
        only_the_error: true,
    },
    Case {
        name: "an unknown severity",
        setup: |_| {},
        args: &["check", "--json", "--severity", "SEVERE"],
        env: &[],
        code: 2,
        says: "invalid value 'SEVERE' for '--severity <SEVERITY>'",
        only_the_error: false,
    },
    Case {
        name: "a scan timeout that is not a number",
        setup: |_| {},
        args: &["check", "--json", "--scan-timeout", "soon"],
        env: &[],
        code: 2,
        says: "invalid value 'soon' for '--scan-timeout <SECONDS>'",
        only_the_error: false,
    },
    Case {
        name: "a dirty work tree given to a non-local stage",
        setup: |r| dev_stage(r, "region = \"eu-west-1\"\n"),
        args: &["deploy", "--stage", "dev", "--allow-dirty"],
        env: &[],
        code: 2,
        says: "--allow-dirty images are never deployed to stage `dev`",
        only_the_error: true,
    },
];

#[test]
fn bad_input_gets_one_line_and_changes_nothing() {
    if !docker_or_skip("bad_input_gets_one_line_and_changes_nothing") {
        return;
    }
    local_stack();
    let mut failures = vec![];
    let mut lines = vec![];
    for case in CASES {
        let repository = unique("it/bad");
        runtime().block_on(async { create_repository(&local_ecr().await, &repository, true).await });
        let repo = Fixture::with_repository(&repository);
        (case.setup)(&repo);
        repo.commit(case.name);
        let run = crate::support::xtask_env(&repo.path(), case.args, case.env);
        let (stdout, stderr) = (run.stdout(), run.stderr());
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        lines.push(format!("{}: exit {:?}\n  {}", case.name, run.output.status.code(), errors.join("\n  ")));
        let mut wrong = vec![];
        if run.output.status.code() != Some(case.code) {
            wrong.push(format!("exit {:?}, not {}", run.output.status.code(), case.code));
        }
        if errors.len() != 1 || !errors[0].contains(case.says) {
            wrong.push(format!("expected one `error:` line saying `{}`", case.says));
        }
        if case.only_the_error && stderr.trim().lines().count() != 1 {
            wrong.push("stderr is more than the error line".to_string());
        }
        if ["DispatchFailure", "ConnectorError", "panicked", "Error {", "Some("]
            .iter()
            .any(|dump| stderr.contains(dump))
        {
            wrong.push("a debug dump".to_string());
        }
        if !stdout.trim().is_empty() && serde_json::from_str::<serde_json::Value>(stdout.trim()).is_err() {
            wrong.push(format!("stdout is neither empty nor JSON: {stdout}"));
        }
        let sh = &repo.sh;
        let status = xshell::cmd!(sh, "git status --porcelain").read().unwrap();
        if !status.is_empty() {
            wrong.push(format!("files changed outside target/: {status}"));
        }
        let images = runtime().block_on(async {
            local_ecr().await.describe_images().repository_name(&repository).send().await.unwrap().image_details().len()
        });
        if images != 0 {
            wrong.push(format!("{images} image(s) reached ECR"));
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}\n--- stderr ---\n{stderr}", case.name, wrong.join("; ")));
        }
    }
    eprintln!("bad inputs: {} tried, {} passed", CASES.len(), CASES.len() - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    crate::support::assert_output("bad_input_error_lines", &lines.join("\n"));
}

/// Inputs that are not errors but must come out right: a symbolic link pointing outside the
/// context (sent as a link: its target's content is never sent), and a file name with a
/// newline (sent as the docker CLI sends it). The image's files are read back with
/// `docker export`.
#[test]
fn unusual_contexts_build_as_docker_builds_them() {
    if !docker_or_skip("unusual_contexts_build_as_docker_builds_them") {
        return;
    }
    local_stack();
    let repository = unique("it/unusual");
    runtime().block_on(async { create_repository(&local_ecr().await, &repository, true).await });
    let repo = Fixture::with_repository(&repository);
    repo.write("outside.txt", "content-that-must-not-be-sent\n");
    std::os::unix::fs::symlink("../outside.txt", repo.path().join("svc/link")).unwrap();
    repo.write("svc/new\nline.txt", "a newline in the name\n");
    let commit = repo.commit("unusual names");
    repo.xtask(&["push"]).ok();

    let sh = &repo.sh;
    let image = format!("{repository}:{commit}");
    let name = unique("it-unusual");
    xshell::cmd!(sh, "docker create --name {name} {image} /none").quiet().ignore_stdout().run().unwrap();
    let export = repo.sh.create_temp_dir().unwrap();
    let tar_path = export.path().join("fs.tar");
    let exported = xshell::cmd!(sh, "docker export -o {tar_path} {name}").quiet().run();
    xshell::cmd!(sh, "docker rm {name}").quiet().ignore_stdout().run().unwrap();
    exported.unwrap();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let (mut names, mut link, mut leaked) = (vec![], None, false);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path_bytes().into_owned();
        if path == b"srv/link" {
            link = Some((entry.header().entry_type(), entry.link_name_bytes().map(|l| l.into_owned())));
        }
        let mut content = vec![];
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        leaked |= String::from_utf8_lossy(&content).contains("content-that-must-not-be-sent");
        names.push(path);
    }
    let (kind, target) = link.expect("the link is in the image");
    assert!(kind.is_symlink(), "sent as a link, as the docker CLI sends it");
    assert_eq!(target.as_deref(), Some(&b"../outside.txt"[..]));
    assert!(!leaked, "the link's target outside the context was sent");
    assert!(names.iter().any(|n| n == b"srv/new\nline.txt"), "a newline in a name");
}
