//! `cargo xtask push` against the local stack, on throwaway git repositories.

use std::process::Command;

use serde_json::Value;

use crate::support::{
    FIXTURE_CARGO_TOML, Fixture, Run, create_repository, docker_or_skip, local_ecr, local_stack, runtime, unique,
};

/// A fixture whose ECR repository exists on the local stack.
fn pushable(immutable: bool) -> (Fixture, String) {
    local_stack();
    let repository = unique("it/push");
    runtime().block_on(async { create_repository(&local_ecr().await, &repository, immutable).await });
    (Fixture::with_repository(&repository), repository)
}

fn push_json(repo: &Fixture, extra: &[&str]) -> (Value, Run) {
    let mut args = vec!["push", "--json"];
    args.extend_from_slice(extra);
    let run = repo.xtask(&args);
    let out = run.ok();
    let json: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {out}"));
    (json, run)
}

fn ecr_digest(repository: &str, tag: &str) -> Option<String> {
    runtime().block_on(async { crate::support::ecr_digest(&local_ecr().await, repository, tag).await })
}

#[test]
fn push_builds_once_then_skips_then_retags_then_builds() {
    if !docker_or_skip("push_builds_once_then_skips_then_retags_then_builds") {
        return;
    }
    let (repo, repository) = pushable(true);
    let first = repo.head();

    // 1. First push: built, and ECR's digest is the one the registry reported.
    let (json, run) = push_json(&repo, &[]);
    assert_eq!(json["commit"], first.as_str());
    assert_eq!(json["stage"], "local");
    let image = &json["images"][0];
    assert_eq!(image["action"], "built", "{}", run.stderr());
    assert_eq!(image["name"], "svc");
    assert_eq!(image["tag"], first.as_str());
    assert_eq!(image["repository"], repository.as_str());
    assert!(image["uri"].as_str().unwrap().ends_with(&format!(".amazonaws.com/{repository}")), "{image}");
    let digest = image["digest"].as_str().unwrap().to_string();
    assert_eq!(ecr_digest(&repository, &first).as_deref(), Some(digest.as_str()));
    // What a build and a push print (plain lines, as in CI): the later runs must not.
    let built = format!("svc: built {repository}:{first}");
    assert!(run.stderr().contains(&built), "{}", run.stderr());
    let registry = runtime().block_on(crate::support::local_ports()).registry_host();
    assert!(run.stderr().contains(&format!("pushed {registry}/{repository}:{first}")), "{}", run.stderr());
    assert!(run.stderr().contains(&format!("{}:{first}@{digest}", image["uri"].as_str().unwrap())), "{}", run.stderr());

    // 2. Same commit again: nothing built.
    let (json, run) = push_json(&repo, &[]);
    assert_eq!(json["images"][0]["action"], "skipped");
    assert_eq!(json["images"][0]["digest"], digest.as_str());
    assert!(!run.stderr().contains(": built "), "no build may run:\n{}", run.stderr());
    assert!(run.stderr().contains("already pushed"), "{}", run.stderr());

    // 3. A commit that changes only a file outside the context: the image is reused.
    repo.write("README.md", "outside the build context\n");
    let second = repo.commit("docs only");
    let (json, run) = push_json(&repo, &[]);
    assert_eq!(json["images"][0]["action"], "retagged", "{}", run.stderr());
    assert_eq!(json["images"][0]["digest"], digest.as_str(), "same image, new tag");
    assert!(!run.stderr().contains(": built "), "no build may run:\n{}", run.stderr());
    assert!(!run.stderr().contains("pushed 127.0.0.1"), "no layer may be pushed:\n{}", run.stderr());
    assert_eq!(ecr_digest(&repository, &second).as_deref(), Some(digest.as_str()));
    // The first commit's tag is still there: retagging never removes a tag.
    assert_eq!(ecr_digest(&repository, &first).as_deref(), Some(digest.as_str()));

    // 4. A change inside the context: built again, a new image.
    repo.write("svc/data.txt", "two\n");
    let third = repo.commit("context change");
    let (json, run) = push_json(&repo, &[]);
    assert_eq!(json["images"][0]["action"], "built", "{}", run.stderr());
    assert_ne!(json["images"][0]["digest"], digest.as_str());
    assert_eq!(ecr_digest(&repository, &third).as_deref(), json["images"][0]["digest"].as_str());

    // 5. --rebuild builds even when the inputs match an image already pushed.
    repo.write("NOTES.md", "outside again\n");
    repo.commit("docs again");
    let (json, run) = push_json(&repo, &["--rebuild"]);
    assert_eq!(json["images"][0]["action"], "built", "{}", run.stderr());
}

#[test]
fn dockerignored_changes_do_not_rebuild() {
    if !docker_or_skip("dockerignored_changes_do_not_rebuild") {
        return;
    }
    let (repo, _) = pushable(true);
    repo.write("svc/.dockerignore", "*.md\n");
    repo.commit("ignore markdown");
    let (json, _) = push_json(&repo, &[]);
    assert_eq!(json["images"][0]["action"], "built");
    repo.write("svc/CHANGES.md", "ignored by .dockerignore\n");
    repo.commit("ignored file");
    let (json, run) = push_json(&repo, &[]);
    assert_eq!(json["images"][0]["action"], "retagged", "{}", run.stderr());
}

#[test]
fn github_output_gets_uri_and_digest() {
    if !docker_or_skip("github_output_gets_uri_and_digest") {
        return;
    }
    let (repo, repository) = pushable(true);
    let output = repo.path().join("github-output");
    repo.write(".gitignore", "/target\n*.ignored\ngithub-output\n");
    repo.commit("ignore the output file");
    let out = output.to_str().unwrap();
    let run = crate::support::xtask_env(&repo.path(), &["push"], &[("GITHUB_OUTPUT", out)]);
    run.ok();
    let text = std::fs::read_to_string(&output).unwrap();
    let uri = text.lines().find_map(|l| l.strip_prefix("image_uri=")).expect("image_uri written");
    assert!(uri.ends_with(&format!("/{repository}:{}", repo.head())), "{text}");
    let digest = text.lines().find_map(|l| l.strip_prefix("image_digest=")).expect("image_digest written");
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{text}");
}

#[test]
fn the_registry_token_never_reaches_argv_or_output() {
    if !docker_or_skip("the_registry_token_never_reaches_argv_or_output") {
        return;
    }
    let (repo, _) = pushable(true);
    let secrets = crate::support::local_secrets();
    let watch = crate::support::SecretWatch::start(&secrets);
    let run = repo.xtask(&["push", "--json"]);
    let (leaks, samples) = watch.finish();
    run.ok();
    assert!(samples > 3, "the watcher must have sampled during the push");
    assert!(leaks.is_empty(), "a secret appeared in {leaks:?}");
    assert!(
        secrets.iter().all(|s| !run.stdout().contains(s.as_str()) && !run.stderr().contains(s.as_str())),
        "a secret was printed"
    );
    let home = std::path::PathBuf::from(std::env::var("HOME").unwrap());
    let dirs = [repo.path().join("target"), crate::support::stack_dir(), home.join(".docker")];
    let files = crate::support::files_holding(&dirs, &secrets);
    assert!(files.is_empty(), "a secret was written to {files:?}");
    let docker_config = home.join(".docker/config.json");
    if let Ok(config) = std::fs::read_to_string(docker_config) {
        let registry = runtime().block_on(crate::support::local_ports()).registry_host();
        assert!(!config.contains(&registry), "push must not `docker login`");
    }
}

#[test]
fn bad_input_gets_one_clear_line() {
    let repo = Fixture::with_repository("it/never-created");
    // Unknown image.
    let err = repo.xtask(&["push", "--image", "nope"]).fails();
    assert!(err.contains("unknown image `nope`; configured images: svc"), "{err}");
    // Unknown stage.
    let err = repo.xtask(&["push", "--stage", "nope"]).fails();
    assert!(err.contains("unknown stage `nope`"), "{err}");
    // A dirty tree.
    repo.write("svc/data.txt", "dirty\n");
    let err = repo.xtask(&["build"]).fails();
    assert!(err.contains("modified: svc/data.txt"), "{err}");
}

#[test]
fn missing_repository_says_how_to_create_it() {
    if !docker_or_skip("missing_repository_says_how_to_create_it") {
        return;
    }
    local_stack();
    let repo = Fixture::with_repository(&unique("it/absent"));
    let err = repo.xtask(&["push"]).fails();
    assert!(err.contains("does not exist; create it with `cargo xtask bootstrap --stage local`"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn no_docker_daemon_is_a_clear_error() {
    let repo = Fixture::new();
    let run =
        crate::support::xtask_env(&repo.path(), &["build"], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let err = run.fails();
    assert!(err.contains("no Docker daemon answers at unix:///nonexistent/docker.sock"), "{err}");
}

#[test]
fn missing_dockerfile_is_a_clear_error() {
    let repo = Fixture::new();
    std::fs::remove_file(repo.path().join("svc/Dockerfile")).unwrap();
    repo.commit("no dockerfile");
    let err = repo.xtask(&["build"]).fails();
    assert!(err.contains("Dockerfile"), "{err}");
}

#[test]
fn a_non_local_stage_names_its_profile_when_credentials_are_missing() {
    let settings = FIXTURE_CARGO_TOML.to_string()
        + "\n[workspace.metadata.xtask.stages.dev]\nprofile = \"no-such-profile\"\nregion = \"eu-west-1\"\n";
    let repo = Fixture::empty();
    repo.write("Cargo.toml", &settings);
    repo.write("svc/Dockerfile", "FROM scratch\n");
    repo.commit("dev stage");
    let home = repo.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let home = home.to_str().unwrap();
    let run = crate::support::xtask_env(
        &repo.path(),
        &["push", "--stage", "dev"],
        &[("HOME", home), ("AWS_CONFIG_FILE", "/nonexistent"), ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")],
    );
    let err = run.fails();
    assert!(err.contains("profile `no-such-profile`"), "{err}");
    assert!(err.contains("aws sso login --profile no-such-profile"), "{err}");
}

/// Builds a one-file image named `name` with the docker CLI (an independent client).
fn make_base_image(name: &str, content: &str) {
    let sh = xshell::Shell::new().unwrap();
    let dir = sh.create_temp_dir().unwrap();
    sh.write_file(dir.path().join("Dockerfile"), "FROM scratch\nCOPY base.txt /base.txt\n").unwrap();
    sh.write_file(dir.path().join("base.txt"), content).unwrap();
    let context = dir.path();
    xshell::cmd!(sh, "docker build -q -t {name} {context}").quiet().ignore_stdout().run().unwrap();
}

#[test]
fn a_patched_base_image_is_a_new_input() {
    if !docker_or_skip("a_patched_base_image_is_a_new_input") {
        return;
    }
    let (repo, _repository) = pushable(true);
    let base = format!("{}:1", unique("it-base"));
    make_base_image(&base, "patch level 1\n");
    repo.write("svc/Dockerfile", "ARG BASE\nFROM ${BASE}\nCOPY . /srv/\n");
    let settings = std::fs::read_to_string(repo.path().join("Cargo.toml")).unwrap();
    repo.write(
        "Cargo.toml",
        &settings.replace("port = 8080", &format!("port = 8080\nbuild-args = {{ BASE = \"{base}\" }}")),
    );
    let built = repo.commit("on a base image");
    let action = |json: &Value| json["images"][0]["action"].as_str().unwrap().to_string();
    assert_eq!(action(&push_json(&repo, &[]).0), "built");

    // Nothing the image is built from changed: the image is reused.
    repo.write("README.md", "docs\n");
    let reused = repo.commit("docs");
    assert_eq!(action(&push_json(&repo, &[]).0), "retagged");

    // The base image is patched under the same name: the next commit builds on it.
    make_base_image(&base, "patch level 2\n");
    repo.write("README.md", "more docs\n");
    repo.commit("more docs");
    let (json, run) = push_json(&repo, &[]);
    assert_eq!(action(&json), "built", "a patched base image must be built on: {}", run.stderr());

    // `check` of the commit that reused the first image warns that its base moved.
    let run = repo.xtask(&["check", "--rev", &reused, "--json", "--scan-timeout", "5"]);
    let json: Value = serde_json::from_str(run.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stderr()));
    let base_check = json["checks"].as_array().unwrap().iter().find(|c| c["name"] == "base svc").unwrap();
    assert_eq!((base_check["ok"].as_bool(), base_check["warning"].as_bool()), (Some(true), Some(true)), "{base_check}");
    let detail = base_check["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("moved since the image was built: {base}")), "{detail}");
    assert!(detail.contains("cargo xtask push --stage local --rebuild"), "{detail}");
    assert!(run.stderr().contains("  warn  base svc"), "{}", run.stderr());
    let revision = json["checks"].as_array().unwrap().iter().find(|c| c["name"] == "revision svc").unwrap();
    assert_eq!(revision["ok"], true, "the source is unchanged: {revision} (built from {built})");
}

/// Pushes the fixture's HEAD from two daemons at once; returns (action, digest, stderr) of each.
fn push_from_two_daemons(repo: &Fixture, other: &crate::support::SecondDaemon) -> Vec<(String, String, String)> {
    let logs = repo.sh.create_temp_dir().unwrap();
    // Two daemons and two builders: the two builds of the commit differ in digest.
    let runs = [("DOCKER_HOST", other.host.as_str(), "classic"), ("XTASK_UNUSED", "", "buildkit")];
    let mut pushes: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(i, (key, value, builder))| {
            let (log, out) = (logs.path().join(format!("push-{i}.log")), logs.path().join(format!("push-{i}.json")));
            let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
                .args(["push", "--json", "--builder", builder])
                .current_dir(repo.path())
                .env("CI", "true")
                .env("XTASK_LOCAL_STACK", crate::support::stack_dir())
                .env(key, value)
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            (child, log, out)
        })
        .collect();
    pushes
        .iter_mut()
        .map(|(child, log, out)| {
            let status = child.wait().unwrap();
            let log = std::fs::read_to_string(log).unwrap();
            assert!(status.success(), "both runs succeed:\n{log}");
            let json: Value = serde_json::from_str(std::fs::read_to_string(out).unwrap().trim()).unwrap();
            let image = &json["images"][0];
            (image["action"].as_str().unwrap().to_string(), image["digest"].as_str().unwrap().to_string(), log)
        })
        .collect()
}

#[test]
fn two_runners_pushing_one_commit_end_with_one_image() {
    if !docker_or_skip("two_runners_pushing_one_commit_end_with_one_image") {
        return;
    }
    let (repo, repository) = pushable(true);
    let other = crate::support::SecondDaemon::start();
    // A run that starts late finds the tag and skips; try until the two really race.
    for attempt in 1..=3 {
        repo.write("svc/data.txt", &format!("attempt {attempt}\n"));
        let commit = repo.commit("race");
        let reports = push_from_two_daemons(&repo, &other);
        let in_ecr = ecr_digest(&repository, &commit).expect("the commit's tag is in ECR");
        for (action, digest, log) in &reports {
            assert_eq!(digest, &in_ecr, "each run reports the one digest ECR holds ({action}):\n{log}");
        }
        let mut actions: Vec<&str> = reports.iter().map(|r| r.0.as_str()).collect();
        actions.sort();
        if actions == ["built", "skipped"] {
            continue;
        }
        assert_eq!(actions, ["built", "pushed-by-another-job"], "{reports:?}");
        let loser = reports.iter().find(|r| r.0 == "pushed-by-another-job").unwrap();
        assert!(loser.2.contains("another job pushed"), "{}", loser.2);
        return;
    }
    panic!("in three attempts the two pushes never raced");
}

/// A new commit built and pushed with BuildKit, then another with the classic builder,
/// through the daemon `env` names (`through`, for the commit messages).
fn push_with_each_builder(repo: &Fixture, repository: &str, env: &[(&str, &str)], through: &str) {
    for builder in ["buildkit", "classic"] {
        repo.write("svc/data.txt", &format!("through {through} with {builder}\n"));
        let commit = repo.commit(&format!("through {through}"));
        let run = crate::support::xtask_env(&repo.path(), &["push", "--json", "--builder", builder], env);
        let json: Value = serde_json::from_str(run.ok().trim()).unwrap();
        assert_eq!(json["images"][0]["action"], "built", "{builder}: {}", run.stderr());
        assert_eq!(ecr_digest(repository, &commit).as_deref(), json["images"][0]["digest"].as_str(), "{builder}");
    }
}

#[test]
fn a_remote_tls_daemon_builds_and_pushes() {
    if !docker_or_skip("a_remote_tls_daemon_builds_and_pushes") {
        return;
    }
    let (repo, repository) = pushable(true);
    let remote = crate::support::SecondDaemon::start_tls();
    let certs = remote.certs();
    let env = [
        ("DOCKER_HOST", remote.host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
    ];
    // BuildKit (its session over TLS too), then the classic builder.
    push_with_each_builder(&repo, &repository, &env, "a TLS daemon");
    // Without the client certificate the daemon is not reached, and the error says why.
    repo.write("svc/data.txt", "tls three\n");
    repo.commit("no certificate");
    let empty = repo.path().join("no-certs");
    std::fs::create_dir_all(&empty).unwrap();
    let env = [
        ("DOCKER_HOST", remote.host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", empty.to_str().unwrap()),
    ];
    let run = crate::support::xtask_env(&repo.path(), &["push"], &env);
    let err = run.fails();
    assert!(err.contains(remote.host.trim_start_matches("tcp://")) || err.contains("ca.pem"), "{err}");
}

#[test]
fn an_ssh_daemon_builds_and_pushes() {
    if !docker_or_skip("an_ssh_daemon_builds_and_pushes") {
        return;
    }
    let (repo, repository) = pushable(true);
    let ssh = crate::support::SshServer::start();
    let host = format!("ssh://root@127.0.0.1:{}", ssh.port);
    let path = ssh.path();
    let env = [("DOCKER_HOST", host.as_str()), ("PATH", path.as_str())];
    push_with_each_builder(&repo, &repository, &env, "ssh");
}

/// `push --jobs 2` of a workspace with two images: both go through the daemon at once and
/// land in ECR; in CI each output line is whole and names its image.
#[test]
fn two_images_push_side_by_side() {
    if !docker_or_skip("two_images_push_side_by_side") {
        return;
    }
    local_stack();
    let (one, two) = (unique("it-jobs-svc"), unique("it-jobs-worker"));
    let settings = FIXTURE_CARGO_TOML.replace("\"fixture/svc\"", &format!("\"{one}\""))
        + &format!(
            "\n[[workspace.metadata.xtask.images]]\nname = \"worker\"\ncontext = \"worker\"\n\
             dockerfile = \"worker/Dockerfile\"\nrepository = \"{two}\"\nport = 8081\n"
        );
    let repo = Fixture::with_settings(&settings);
    repo.write("worker/Dockerfile", "FROM scratch\nCOPY . /srv/\n");
    for dir in ["svc", "worker"] {
        repo.write(&format!("{dir}/data.txt"), &unique(dir));
    }
    let commit = repo.commit("two images");
    let ecr = runtime().block_on(async {
        let ecr = local_ecr().await;
        for name in [&one, &two] {
            create_repository(&ecr, name, true).await;
        }
        ecr
    });

    let run = repo.xtask(&["push", "--stage", "local", "--jobs", "2", "--json"]);
    let report: Value = serde_json::from_str(run.ok().trim()).unwrap();
    let names: Vec<&str> = report["images"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["svc", "worker"], "the report keeps the configured order");
    for image in report["images"].as_array().unwrap() {
        assert_eq!(image["action"], "built", "{image}");
    }
    runtime().block_on(async {
        for name in [&one, &two] {
            assert!(crate::support::ecr_digest(&ecr, name, &commit).await.is_some(), "{name}:{commit} not in ECR");
        }
    });
    // Whole lines: every progress line names the image (or the push of its repository) it is about.
    let stderr = run.stderr();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let named = ["svc:", "worker:"].iter().any(|p| line.starts_with(p))
            || [&one, &two].iter().any(|r| line.starts_with("push ") && line.contains(r.as_str()));
        assert!(named, "a line that names no image: {line:?}\n{stderr}");
    }
}

/// A daemon at a public address without TLS would get ECR's password in clear text: push
/// refuses it, in one line, before any connection (the address is never reached: a
/// connection attempt would fail otherwise, with another message, or hang).
#[test]
fn push_refuses_a_public_docker_daemon_without_tls() {
    let (repo, _) = pushable(false);
    let started = std::time::Instant::now();
    let run = repo.xtask_env(&["push"], &[("DOCKER_HOST", "tcp://8.8.8.8:2375"), ("DOCKER_TLS_VERIFY", "")]);
    let stderr = run.fails();
    assert_eq!(run.output.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for part in ["tcp://8.8.8.8:2375", "public address", "clear text", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"] {
        assert!(errors[0].contains(part), "{part}: {stderr}");
    }
    assert!(!stderr.contains("cannot connect") && !stderr.contains("no Docker daemon answers"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
}
