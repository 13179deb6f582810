//! `cargo xtask tag`: commit identity, checked against git itself.

use crate::support::{Fixture, xtask};

#[test]
fn tag_is_the_full_commit_sha() {
    let repo = Fixture::new();
    let out = repo.xtask(&["tag"]).ok();
    assert_eq!(out, format!("{}\n", repo.head()), "stdout must be the SHA and nothing else");
    assert_eq!(repo.head().len(), 40);
}

#[test]
fn rev_selects_an_earlier_commit() {
    let repo = Fixture::new();
    let first = repo.head();
    repo.write("svc/data.txt", "two\n");
    let second = repo.commit("second");
    assert_ne!(first, second);
    assert_eq!(repo.xtask(&["tag", "--rev", "HEAD~1"]).ok().trim(), first);
    assert_eq!(repo.xtask(&["tag", "--rev", &first[..10]]).ok().trim(), first);
    assert_eq!(repo.xtask(&["tag"]).ok().trim(), second);
}

#[test]
fn detached_head_is_fine() {
    let repo = Fixture::new();
    let first = repo.head();
    repo.commit("second");
    let sh = &repo.sh;
    xshell::cmd!(sh, "git checkout -q --detach {first}").run().unwrap();
    assert_eq!(repo.xtask(&["tag"]).ok().trim(), first);
}

#[test]
fn dirty_tree_is_refused_with_the_paths() {
    let repo = Fixture::new();
    repo.write("svc/data.txt", "changed\n");
    repo.write("notes.txt", "untracked\n");
    repo.write("scratch.ignored", "ignored files do not count\n");
    let run = repo.xtask(&["tag"]);
    let err = run.fails();
    assert!(run.stdout().is_empty(), "nothing on stdout on failure: {}", run.stdout());
    assert!(err.contains("commit or stash"), "{err}");
    assert!(err.contains("modified: svc/data.txt"), "{err}");
    assert!(err.contains("untracked: notes.txt"), "{err}");
    assert!(!err.contains("scratch.ignored"), "{err}");
}

#[test]
fn an_ignored_file_a_build_context_sends_makes_the_tree_dirty() {
    // `*.ignored` is git-ignored: `git status` is clean, but svc's context would send it.
    let repo = Fixture::new();
    repo.write("svc/.env.ignored", "TOKEN=not-in-the-commit\n");
    let run = repo.xtask(&["tag"]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(2), "{err}");
    assert!(err.contains("not in the commit, sent by a build context: svc/.env.ignored"), "{err}");
    assert!(err.contains(".dockerignore"), "names the fix: {err}");
    assert!(err.contains("--allow-dirty"), "names the other fix: {err}");
    // The build is refused before any daemon is asked.
    let err = repo.xtask_env(&["build"], &[("DOCKER_HOST", "unix:///nonexistent.sock")]).fails();
    assert!(err.contains("svc/.env.ignored"), "{err}");

    // --allow-dirty: a dirty tag whose hash covers the file.
    let dirty = repo.xtask(&["tag", "--allow-dirty"]).ok().trim().to_string();
    assert!(dirty.starts_with(&format!("{}-dirty-", repo.head())), "{dirty}");
    repo.write("svc/.env.ignored", "TOKEN=another\n");
    assert_ne!(repo.xtask(&["tag", "--allow-dirty"]).ok().trim(), dirty);

    // Excluded by the context's .dockerignore: not sent, so the commit's tag again.
    repo.write("svc/.dockerignore", "*.ignored\n");
    repo.commit("exclude it from the context");
    assert_eq!(repo.xtask(&["tag"]).ok().trim(), repo.head());
}

#[test]
fn staged_changes_are_dirty_too() {
    let repo = Fixture::new();
    repo.write("svc/new.txt", "new\n");
    let sh = &repo.sh;
    xshell::cmd!(sh, "git add svc/new.txt").run().unwrap();
    let err = repo.xtask(&["tag"]).fails();
    assert!(err.contains("added: svc/new.txt"), "{err}");
}

#[test]
fn allow_dirty_tags_never_equal_clean_ones() {
    let repo = Fixture::new();
    let clean = repo.head();
    repo.write("svc/data.txt", "changed\n");
    let dirty = repo.xtask(&["tag", "--allow-dirty"]).ok().trim().to_string();
    let (commit, hash) = dirty.split_once("-dirty-").expect("a dirty tag has the -dirty- suffix");
    assert_eq!(commit, clean);
    assert_eq!(hash.len(), 8);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(dirty, clean);

    // The suffix follows the content: other changes, another tag; the same changes, the same tag.
    assert_eq!(repo.xtask(&["tag", "--allow-dirty"]).ok().trim(), dirty);
    repo.write("svc/data.txt", "changed again\n");
    let other = repo.xtask(&["tag", "--allow-dirty"]).ok().trim().to_string();
    assert_ne!(other, dirty);
}

#[test]
fn clean_tree_with_allow_dirty_is_the_plain_sha() {
    let repo = Fixture::new();
    assert_eq!(repo.xtask(&["tag", "--allow-dirty"]).ok().trim(), repo.head());
}

#[test]
fn not_a_repository_is_a_clear_error() {
    let sh = xshell::Shell::new().unwrap();
    let dir = sh.create_temp_dir().unwrap();
    sh.write_file(dir.path().join("Cargo.toml"), crate::support::FIXTURE_CARGO_TOML).unwrap();
    let err = xtask(dir.path(), &["tag"]).fails();
    assert!(err.contains("is not inside a git repository"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn repository_without_commits_is_a_clear_error() {
    let repo = Fixture::empty();
    repo.write("Cargo.toml", crate::support::FIXTURE_CARGO_TOML);
    let err = repo.xtask(&["tag"]).fails();
    assert!(err.contains("has no commits yet"), "{err}");
    let err = repo.xtask(&["tag", "--rev", "main"]).fails();
    assert!(err.contains("has no commits yet"), "{err}");
}

#[test]
fn unknown_rev_is_a_clear_error() {
    let repo = Fixture::new();
    let err = repo.xtask(&["tag", "--rev", "no-such-branch"]).fails();
    assert!(err.contains("unknown revision `no-such-branch`"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
