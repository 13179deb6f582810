//! SIGTERM (or Ctrl-C) while a command works: it stops at once with its children, and
//! leaves nothing half done (no tag for an image that was not pushed whole).

use std::{
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use crate::support::{
    clone_workspace, docker_or_skip, local_ecr, local_stack, process_running, runtime, spawn_xtask, stack_dir, unique,
    wait_until,
};

/// Is an upload to `repository` under way at the local stack's registry: a blob upload of
/// its with bytes in the registry's storage?
fn uploading(repository: &str) -> bool {
    fn walk(dir: &Path, repository: &str, depth: usize) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else { return false };
        for entry in entries.flatten() {
            let path = entry.path();
            let uploads = path.join("repositories").join(repository).join("_uploads");
            if let Ok(sessions) = std::fs::read_dir(&uploads) {
                let data =
                    |s: std::fs::DirEntry| std::fs::metadata(s.path().join("data")).map(|m| m.len()).unwrap_or(0);
                if sessions.flatten().any(|s| data(s) > 0) {
                    return true;
                }
            }
            if depth > 0 && path.is_dir() && walk(&path, repository, depth - 1) {
                return true;
            }
        }
        false
    }
    walk(&stack_dir(), repository, 7)
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) with the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

/// Waits for `child` to exit within `limit`; returns its exit code and how long it took.
fn exits_within(child: &mut Child, limit: Duration) -> (Option<i32>, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), started.elapsed());
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("still running {limit:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `stderr` holds `text`.
fn wait_for(stderr: &Path, text: &str, limit: Duration) {
    let started = Instant::now();
    while !std::fs::read_to_string(stderr).unwrap_or_default().contains(text) {
        assert!(
            started.elapsed() < limit,
            "`{text}` never appeared:\n{}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pids of `parent`'s children.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

#[test]
fn sigterm_during_a_build_stops_at_once_and_tags_nothing() {
    if !docker_or_skip("sigterm_during_a_build_stops_at_once_and_tags_nothing") {
        return;
    }
    local_stack();
    let repository = unique("it/interrupt");
    runtime().block_on(async { crate::support::create_repository(&local_ecr().await, &repository, true).await });
    let repo = crate::support::Fixture::with_repository(&repository);
    // A build step that takes long unless the context says otherwise.
    repo.write(
        "svc/Dockerfile",
        "FROM xtask-local/debian:bookworm-minbase\nCOPY . /srv/\nRUN test -f /srv/fast || sleep 120\n",
    );
    let slow = repo.commit("a slow build");

    let logs = repo.sh.create_temp_dir().unwrap();
    let stderr = logs.path().join("push.log");
    let mut push = spawn_xtask(&repo.path(), &["push"], &[], &stderr);
    wait_for(&stderr, "RUN test -f /srv/fast || sleep 120", Duration::from_secs(60));
    // The step's own process runs: the signal comes mid-step, not before it.
    wait_until("the build step's `sleep 120`", Duration::from_secs(60), || process_running(&["sleep", "120"]));
    sigterm(&push);
    let (code, took) = exits_within(&mut push, Duration::from_secs(10));
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(code, Some(143), "{log}");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert!(log.contains("interrupted by SIGTERM"), "{log}");
    let tag = runtime().block_on(async { crate::support::ecr_digest(&local_ecr().await, &repository, &slow).await });
    assert_eq!(tag, None, "nothing may be tagged for an interrupted build");

    // Nothing half done stands in the way of the next run.
    repo.write("svc/fast", "");
    let fast = repo.commit("fast");
    repo.xtask(&["push"]).ok();
    assert!(
        runtime()
            .block_on(async { crate::support::ecr_digest(&local_ecr().await, &repository, &fast).await })
            .is_some()
    );
}

/// `check` of an unpushed commit in a clone of this workspace, interrupted by `signal`
/// while `cdk synth` runs: the command exits with `code` and cdk is gone.
fn interrupting_cdk(signal: libc::c_int, whole_group: bool, code: i32) {
    local_stack();
    let repo = clone_workspace();
    let logs = repo.sh.create_temp_dir().unwrap();
    let stderr = logs.path().join("check.log");
    // In a process group of its own, as a terminal's foreground job is.
    let mut check = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
    check
        .args(["check", "--stage", "local"])
        .current_dir(repo.path())
        .env("CI", "true")
        .env("XTASK_LOCAL_STACK", stack_dir())
        .stderr(std::fs::File::create(&stderr).unwrap());
    std::os::unix::process::CommandExt::process_group(&mut check, 0);
    let mut check = check.spawn().unwrap();
    let started = Instant::now();
    let cdk = loop {
        let cdk = children(check.id()).into_iter().find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("synth")
        });
        if let Some(cdk) = cdk {
            break cdk;
        }
        assert!(
            check.try_wait().unwrap().is_none(),
            "check ended before cdk ran: {}",
            std::fs::read_to_string(&stderr).unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(60), "cdk never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let target = if whole_group { -(check.id() as i32) } else { check.id() as i32 };
    // SAFETY: kill(2) of the process (group) this test started.
    assert_eq!(unsafe { libc::kill(target, signal) }, 0);
    let (exit, _) = exits_within(&mut check, Duration::from_secs(10));
    assert_eq!(exit, Some(code), "{}", std::fs::read_to_string(&stderr).unwrap());
    let gone = Instant::now();
    while Path::new(&format!("/proc/{cdk}")).exists()
        && !std::fs::read_to_string(format!("/proc/{cdk}/stat")).unwrap_or_default().contains(") Z")
    {
        assert!(gone.elapsed() < Duration::from_secs(5), "cdk (pid {cdk}) outlived the interrupted command");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_during_cdk_kills_cdk_too() {
    if docker_or_skip("sigterm_during_cdk_kills_cdk_too") {
        interrupting_cdk(libc::SIGTERM, false, 143);
    }
}

#[test]
fn ctrl_c_during_cdk_stops_both() {
    if docker_or_skip("ctrl_c_during_cdk_stops_both") {
        // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
        interrupting_cdk(libc::SIGINT, true, 130);
    }
}

#[test]
fn sigterm_during_the_upload_tags_nothing() {
    if !docker_or_skip("sigterm_during_the_upload_tags_nothing") {
        return;
    }
    local_stack();
    let repository = unique("it/interrupt-push");
    runtime().block_on(async { crate::support::create_repository(&local_ecr().await, &repository, true).await });
    let repo = crate::support::Fixture::with_repository(&repository);
    // 256 MiB that do not compress: the upload takes seconds.
    let mut big = vec![0u8; 256 << 20];
    // New content each run: neither the build cache nor the registry may have it.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut state = (nanos as u64) | 1;
    for chunk in big.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(repo.path().join("svc/big.bin"), &big).unwrap();
    let commit = repo.commit("a big layer");

    let logs = repo.sh.create_temp_dir().unwrap();
    let stderr = logs.path().join("push.log");
    let mut push = spawn_xtask(&repo.path(), &["push"], &[], &stderr);
    wait_for(&stderr, "svc: built ", Duration::from_secs(120));
    // The layer's bytes are arriving at the registry: the signal comes mid-upload.
    wait_until("the layer's upload to start", Duration::from_secs(60), || uploading(&repository));
    sigterm(&push);
    let (code, took) = exits_within(&mut push, Duration::from_secs(10));
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        !log.contains("built and pushed"),
        "the push ended before the signal; the test needs a bigger layer:\n{log}"
    );
    assert_eq!(code, Some(143), "{log}");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    let ecr = |tag: String| {
        runtime().block_on(async { crate::support::ecr_digest(&local_ecr().await, &repository, &tag).await })
    };
    // No tag names an incomplete image: either there is none, or (the daemon finished the
    // upload as the signal came) every blob its manifest names is in the registry.
    if ecr(commit.clone()).is_some() {
        runtime().block_on(async {
            let ecr = local_ecr().await;
            let manifest = xtask_release::clients::ecr::manifest(&ecr, &repository, &commit).await.unwrap();
            let body: serde_json::Value = serde_json::from_str(&manifest.body).unwrap();
            let auth = xtask_release::clients::ecr::authorization(&ecr).await.unwrap();
            let registry = crate::support::local_ports().await.registry_host();
            let client = xtask_release::clients::http::Client::new()
                .with_credentials(&format!("http://{registry}/"), auth.basic_header())
                .unwrap();
            let blobs = body["layers"].as_array().unwrap().iter().chain([&body["config"]]);
            for blob in blobs {
                let digest = blob["digest"].as_str().unwrap();
                let url = format!("http://{registry}/v2/{repository}/blobs/{digest}");
                let head = client.send(hyper::Method::HEAD, &url, &[], Default::default()).await.unwrap();
                assert!(head.status.is_success(), "the tag names an image whose blob {digest} is missing");
            }
        });
    }

    // The next run finishes the job.
    repo.xtask(&["push"]).ok();
    assert!(ecr(commit).is_some());
}
