//! The command line as a script sees it: `--help`, exit codes, a closed stdout.

use std::process::{Command, Stdio};

use crate::support::{Fixture, workspace_root, xtask, xtask_env};

/// Walks every command of `Cli::command()` (so a new one cannot be missed): each has an
/// about line and appears in its parent's `--help`, each flag it shows is documented and
/// named in its own `--help` (the real binary's), and hidden ones stay hidden.
#[test]
fn help_documents_every_command_and_flag() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, problems: &mut Vec<String>, visited: &mut usize) {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = xtask(&workspace_root(), &args).ok();
        *visited += 1;
        let at = if path.is_empty() { "cargo xtask".to_string() } else { path.join(" ") };
        if !help.contains("Usage: cargo xtask") {
            problems.push(format!("`{at} --help` has no usage line"));
        }
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()) {
            let Some(long) = arg.get_long() else { continue };
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                problems.push(format!("`{at} --{long}` has no help text"));
            }
            if !help.contains(&format!("--{long}")) {
                problems.push(format!("`{at} --help` does not name --{long}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() {
                if help.contains(&format!("\n  {} ", sub.get_name())) {
                    problems.push(format!("`{at} --help` lists the hidden `{}`", sub.get_name()));
                }
                continue;
            }
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                problems.push(format!("`{at} {}` has no about line", sub.get_name()));
            }
            if !help.contains(&format!("\n  {} ", sub.get_name())) {
                problems.push(format!("`{at} --help` does not list `{}`", sub.get_name()));
            }
            path.push(sub.get_name().to_string());
            walk(sub, path, problems, visited);
            path.pop();
        }
    }
    let (mut problems, mut visited) = (vec![], 0);
    walk(&xtask::commands::Cli::command(), &mut vec![], &mut problems, &mut visited);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(visited > 20, "the walk reached {visited} commands");
    let help = xtask(&workspace_root(), &["--help"]).ok();
    assert!(help.contains("Exit codes: 0 success; 1 a verdict"), "exit codes are documented:\n{help}");
    // Flags a script sets by their environment variables.
    for (command, flag) in [("push", "XTASK_BUILDER"), ("push", "XTASK_CHANNEL"), ("untag", "--delete-image")] {
        let help = xtask(&workspace_root(), &[command, "--help"]).ok();
        assert!(help.contains(flag), "`{command} --help` names {flag}:\n{help}");
    }
}

/// Production `deploy --help` shows no flag that applies to the local stage alone; `local
/// --help` documents them.
#[test]
fn deploy_help_shows_no_local_only_flag() {
    let deploy = xtask(&workspace_root(), &["deploy", "--help"]).ok();
    let local = xtask(&workspace_root(), &["local", "--help"]).ok();
    for flag in ["--allow-dirty", "--builder", "--debian-mirror", "XTASK_DEBIAN_MIRROR", "XTASK_BUILDER"] {
        assert!(!deploy.contains(flag), "`deploy --help` shows the local-only {flag}:\n{deploy}");
        assert!(local.contains(flag), "`local --help` documents {flag}:\n{local}");
    }
}

/// The README's table of exit codes says what `--help` says, row for row.
#[test]
fn the_readme_and_help_agree_on_exit_codes() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let rows: Vec<(String, String)> = readme
        .lines()
        .skip_while(|l| l.trim() != "| code | meaning |")
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].to_string(), cells[1..].join(" | "))
        })
        .collect();
    let codes: Vec<(String, String)> =
        xtask_release::support::exit::CODES.iter().map(|(c, m)| (c.to_string(), m.to_string())).collect();
    assert_eq!(rows, codes, "README.md's exit codes differ from --help's");
    let help = xtask(&workspace_root(), &["--help"]).ok();
    for (code, meaning) in &codes {
        assert!(help.contains(&format!("{code} {meaning}")), "--help lacks `{code} {meaning}`:\n{help}");
    }
}

#[test]
fn usage_and_configuration_errors_exit_2_in_one_line() {
    let repo = Fixture::new();
    let cases: [(&[&str], &str); 4] = [
        (&["push", "--no-such-flag"], "unexpected argument '--no-such-flag'"),
        (&["push", "--stage", "nope"], "unknown stage `nope`; known stages: local"),
        (&["push", "--builder", "kaniko"], "invalid value 'kaniko' for '--builder <BUILDER>'"),
        (&["check", "--stage", "local", "--profile", "p"], "--profile does not apply to the local stage"),
    ];
    for (args, expected) in cases {
        let run = repo.xtask(args);
        let err = run.fails();
        assert_eq!(run.output.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: expected `{expected}` in {err}");
    }
    repo.write("Cargo.toml", &crate::support::FIXTURE_CARGO_TOML.replace("port = 8080", "port = \"http\""));
    let run = repo.xtask(&["tag", "--allow-dirty"]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(2), "{err}");
    assert!(err.contains("images[0].port: invalid type: string \"http\", expected u16"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn a_local_deploy_with_a_profile_fails_before_anything_starts() {
    let repo = Fixture::new();
    let stack = repo.path().join("its-own-stack");
    let run = xtask_env(
        &repo.path(),
        &["deploy", "--stage", "local", "--profile", "nope"],
        &[("XTASK_LOCAL_STACK", stack.to_str().unwrap())],
    );
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(2), "{err}");
    assert!(err.contains("--profile does not apply to the local stage"), "{err}");
    assert!(!err.contains("local stack up"), "nothing was started: {err}");
    assert!(!stack.exists(), "nothing was started");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let repo = Fixture::new();
    for args in [&["tag"][..], &["config"]] {
        // The reading end is closed before the command writes: its first write fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .current_dir(repo.path())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn config_prints_the_settings_the_cdk_app_reads() {
    let repo = Fixture::new();
    let json: serde_json::Value = serde_json::from_str(&repo.xtask(&["config"]).ok()).unwrap();
    assert_eq!(json["schema"], 3);
    assert_eq!(json["project"], "fixture");
    assert_eq!(json["rollbackWindow"], 10);
    let rules = json["lifecyclePolicy"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["selection"]["tagPrefixList"], serde_json::json!(["deployed-local."]));
    assert_eq!(rules[1]["selection"]["tagPrefixList"], serde_json::json!(["main-"]));
    assert_eq!(rules[1]["selection"]["countNumber"], 30);
    assert_eq!(rules[2]["selection"]["tagPrefixList"], serde_json::json!(["pr-"]));
    assert_eq!(
        json["images"][0],
        serde_json::json!({"name": "svc", "repository": "fixture/svc", "prRepository": "pr/fixture/svc", "port": 8080, "platform": "linux/amd64", "loadBalanced": true})
    );
    assert_eq!(
        json["stages"]["local"],
        serde_json::json!({"name": "local", "region": "us-east-1", "account": "123456789012",
                           "signingKeys": {"main": "alias/fixture-local-main", "pr": "alias/fixture-local-pr"},
                           "rollout": {"strategy": "rolling", "rollbackAlarms": []}})
    );
}

#[test]
fn an_unreachable_aws_endpoint_is_one_readable_line() {
    let repo = Fixture::new();
    repo.append("Cargo.toml", "\n[workspace.metadata.xtask.stages.dev]\nregion = \"eu-west-1\"\n");
    repo.commit("a dev stage");
    for (endpoint, why) in [
        ("http://127.0.0.1:9", "cannot reach the AWS API: connection refused"),
        ("http://no-such-host.invalid", "cannot reach the AWS API: DNS lookup failed (offline?)"),
    ] {
        let env =
            [("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "secret"), ("AWS_ENDPOINT_URL", endpoint)];
        let run = xtask_env(&repo.path(), &["push", "--stage", "dev"], &env);
        let err = run.fails();
        assert_eq!(run.output.status.code(), Some(2), "{err}");
        // The first call of a push: does the repository hold the commit's tag?
        assert!(err.contains("error: cannot look up tag "), "{endpoint}: {err}");
        assert!(err.contains(&format!(" in ECR repository `fixture/svc`: {why}")), "{endpoint}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line, no debug dump: {err}");
        assert!(!err.contains("DispatchFailure") && !err.contains("secret"), "{err}");
    }
}

#[test]
fn the_secret_watch_sees_a_secret_in_an_environment_and_a_file() {
    let canary = vec!["xtask-canary-secret".to_string()];
    let watch = crate::support::SecretWatch::start(&canary);
    Command::new("sleep").arg("0.3").env("CANARY", &canary[0]).status().unwrap();
    let (leaks, _) = watch.finish();
    assert!(leaks.iter().any(|l| l.contains("/environ")), "{leaks:?}");
    let repo = Fixture::new();
    std::fs::create_dir_all(repo.path().join("target/logs")).unwrap();
    repo.write("target/logs/a.log", "xtask-canary-secret\n");
    assert_eq!(crate::support::files_holding(&[repo.path().join("target")], &canary).len(), 1);
}
