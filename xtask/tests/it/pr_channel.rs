//! A pull request's images live apart from main's: its push writes only `pr/<repository>`
//! (signed with the pull-request key), `check` and `plan` find them there, and main's push
//! of the same content builds its own in main's repository.

use serde_json::Value;

use crate::support::{Fixture, Run, create_repository, docker_or_skip, local_ecr, local_stack, runtime, unique};

fn json(run: &Run) -> Value {
    let out = run.ok();
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {out}"))
}

/// Every image of `repository`, as DescribeImages lists them: (digest, tags).
fn images(repository: &str) -> Vec<(String, Vec<String>)> {
    runtime().block_on(async {
        let details = xtask_release::clients::ecr::images(&local_ecr().await, repository).await.unwrap();
        details.iter().map(|d| (d.image_digest().unwrap().to_string(), d.image_tags().to_vec())).collect()
    })
}

/// The check named `name` of a `check --json` report.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    let checks = report["checks"].as_array().unwrap();
    checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check `{name}` in {report}"))
}

#[test]
fn a_pull_request_writes_only_its_repository_and_main_builds_its_own() {
    if !docker_or_skip("a_pull_request_writes_only_its_repository_and_main_builds_its_own") {
        return;
    }
    local_stack();
    let repository = unique("it/prchannel");
    let pr_repository = format!("pr/{repository}");
    runtime().block_on(async {
        let ecr = local_ecr().await;
        create_repository(&ecr, &repository, true).await;
        create_repository(&ecr, &pr_repository, true).await;
    });
    let repo = Fixture::with_repository(&repository);
    let sh = &repo.sh;

    // A commit on a branch of its own: the pull-request channel (auto).
    xshell::cmd!(sh, "git checkout -q -b feature").run().unwrap();
    repo.write("svc/data.txt", &format!("{}\n", unique("feature")));
    let commit = repo.commit("a pull request's change");
    let pushed = json(&repo.xtask(&["push", "--stage", "local", "--json"]));
    let image = &pushed["images"][0];
    assert_eq!(image["repository"], pr_repository.as_str(), "{pushed}");
    assert_eq!(
        (image["action"].as_str(), image["channel_tag"].as_str()),
        (Some("built"), Some(&*format!("pr-{commit}")))
    );
    let pr_digest = image["digest"].as_str().unwrap().to_string();

    // Main's repository is untouched; the pull request's holds the image, its tags and its
    // provenance (a referrer: an image of its own).
    assert_eq!(images(&repository), vec![], "a pull request's push wrote main's repository");
    let in_pr = images(&pr_repository);
    let (_, tags) = in_pr.iter().find(|(digest, _)| *digest == pr_digest).unwrap_or_else(|| panic!("{in_pr:?}"));
    assert!(tags.contains(&commit) && tags.contains(&format!("pr-{commit}")), "{tags:?}");
    assert!(tags.iter().any(|t| t.starts_with("inputs-") && !t.starts_with("inputs-pr-")), "{tags:?}");

    // check (auto: the pull-request channel) finds the image there, signed by the pr key;
    // checked as main's, it is missing.
    let args = ["check", "--stage", "local", "--json", "--scan-timeout", "1"];
    let report: Value = serde_json::from_str(repo.xtask(&args).stdout().trim()).unwrap();
    let (present, provenance) = (check(&report, "image svc"), check(&report, "provenance svc"));
    assert_eq!(present["ok"], true, "{report}");
    assert!(present["detail"].as_str().unwrap().starts_with(&format!("{pr_repository}:{commit}@")), "{present}");
    assert_eq!(provenance["ok"], true, "{report}");
    assert!(provenance["detail"].as_str().unwrap().contains("alias/fixture-local-pr"), "{provenance}");
    assert_eq!(check(&report, "revision svc")["ok"], true, "{report}");
    let run = repo.xtask_env(&args, &[("XTASK_CHANNEL", "main")]);
    let report: Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(check(&report, "image svc")["ok"], false, "{report}");
    assert_eq!(run.output.status.code(), Some(1));

    // plan reads the pull request's repository: nothing left to push.
    let plan = json(&repo.xtask(&["plan", "--stage", "local", "--no-diff", "--json", "--channel", "pr"]));
    assert_eq!(
        (plan["images"][0]["action"].as_str(), plan["images"][0]["repository"].as_str()),
        (Some("skip"), Some(pr_repository.as_str()))
    );

    // Merged: the same commit on main. Main's push never takes the pull request's image
    // (nor looks for it): it builds its own, in main's repository, signed with main's key.
    xshell::cmd!(sh, "git checkout -q main").run().unwrap();
    xshell::cmd!(sh, "git merge -q --ff-only feature").run().unwrap();
    let run = repo.xtask(&["push", "--stage", "local", "--json"]);
    let main = json(&run);
    let image = &main["images"][0];
    assert_eq!(image["repository"], repository.as_str(), "{main}");
    assert_eq!(
        (image["action"].as_str(), image["channel_tag"].as_str()),
        (Some("built"), Some(&*format!("main-{commit}")))
    );
    assert!(run.stderr().contains("signed its provenance with alias/fixture-local-main"), "{}", run.stderr());
    // (The daemon's own push may mount layers it pushed there before, by digest: the same bytes.)
    let read = run.stderr().lines().filter(|l| !l.starts_with("push ")).any(|l| l.contains(&pr_repository));
    assert!(!read, "main's push read the pull-request repository: {}", run.stderr());
    // The pull request's image gained no tag of main's.
    let in_pr = images(&pr_repository);
    let (_, tags) = in_pr.iter().find(|(digest, _)| *digest == pr_digest).unwrap();
    assert!(!tags.iter().any(|t| t.starts_with("main-")), "{tags:?}");
}
