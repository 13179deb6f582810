//! The README's command sequences run as written, in order, on a fresh clone with a local
//! stack of its own (nothing bootstrapped, nothing pushed): the newcomer's path.

use crate::support::{clone_workspace, docker_or_skip, local_stack, runtime, xtask_env};

/// The lines of the README's `sh` blocks, in order.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(crate::support::workspace_root().join("README.md")).unwrap();
    let mut commands = vec![];
    let mut in_sh = false;
    for line in readme.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            command if in_sh && !command.is_empty() => commands.push(command.to_string()),
            _ => {}
        }
    }
    commands
}

#[test]
fn the_readme_shows_the_newcomers_path_first() {
    let commands = readme_commands();
    assert_eq!(
        commands.first().map(String::as_str),
        Some("cargo xtask deploy --stage local"),
        "the first command a newcomer reads is the main job on the local stack: {commands:?}"
    );
    assert!(commands.iter().any(|c| c == "cargo xtask test"), "the README shows the test command: {commands:?}");
}

#[test]
fn the_readmes_commands_run_as_written_on_a_fresh_clone() {
    if !docker_or_skip("the_readmes_commands_run_as_written_on_a_fresh_clone") {
        return;
    }
    // The shared stack makes the stand-in base images in the daemon; this test's own stack
    // then starts empty otherwise.
    local_stack();
    let repo = clone_workspace();
    let own = repo.path().join("target/readme-stack");
    let env = [("XTASK_LOCAL_STACK", own.to_str().unwrap())];
    // Whatever happens, the stack of this test stops with it.
    struct Down<'a>(&'a std::path::Path, &'a [(&'a str, &'a str)]);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            xtask_env(self.0, &["local", "down", "--purge"], self.1);
        }
    }
    let repo_path = repo.path();
    let _down = Down(&repo_path, &env);
    let mut last_url = None;
    let mut ran = 0;
    for command in readme_commands() {
        if command == "cargo xtask test" {
            // What runs this test.
            continue;
        }
        if command == "curl <url>/version" {
            let url: String = last_url.clone().expect("a deploy printed the URL before the README asks for it");
            let response = runtime()
                .block_on(xtask_release::clients::http::Client::new().get(&format!("{url}/version"), &[]))
                .unwrap_or_else(|err| panic!("{url}/version: {err:#}"));
            assert!(response.status.is_success(), "{url}/version: {}", response.status);
            let version: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(version["commit"].as_str(), Some(repo.head().as_str()), "{version}");
            ran += 1;
            continue;
        }
        let args: Vec<&str> = command
            .strip_prefix("cargo xtask ")
            .unwrap_or_else(|| panic!("the README shows `{command}`, which this test does not know how to run"))
            .split_whitespace()
            .collect();
        let run = xtask_env(&repo.path(), &args, &env);
        run.ok();
        if let Some(url) = run.stderr().lines().find_map(|l| l.strip_prefix("app: http://")?.split_whitespace().next())
        {
            last_url = Some(format!("http://{url}"));
        }
        ran += 1;
    }
    assert!(ran >= 4, "the README's sequences ran {ran} commands");
}
