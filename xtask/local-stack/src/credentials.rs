//! The local stack's credentials: what the emulated API accepts (they grant nothing
//! anywhere else), handed to cdk by `credential_process` so they never reach an
//! environment, an argument list or a file, and the profiles that act in further accounts
//! by assuming a role there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Dummy credentials the emulated API accepts; they grant nothing anywhere else. The
/// secret is distinctive so that tests can tell it never reaches argv, environments or logs.
pub const LOCAL_ACCESS_KEY: &str = "testing";
pub const LOCAL_SECRET_KEY: &str = "xtask-local-stack-secret";

/// The profile cdk runs with on the local stack (`cdk --profile`, as on a real stage).
pub const LOCAL_PROFILE: &str = "xtask-local-stack";

/// The role assumed in a further account.
pub fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/{LOCAL_PROFILE}")
}

/// The credentials `credential_process` hands cdk on the local stack (`local credentials`).
pub fn credentials_json() -> String {
    serde_json::json!({ "Version": 1, "AccessKeyId": LOCAL_ACCESS_KEY, "SecretAccessKey": LOCAL_SECRET_KEY })
        .to_string()
}

/// An AWS config file with the profile cdk runs with on the local stack: its credentials
/// come from `credential_process` (this program), so they are never in an environment,
/// an argument list or a file.
/// Another account's profile assumes a role in it from that one, as a profile of a real
/// second account would (`role_arn` + `source_profile`).
pub fn write_aws_config(dir: &Path, accounts: &[&str]) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's path for the local stack's profile")?;
    let path = dir.join("aws-config");
    let mut text = format!(
        "[profile {LOCAL_PROFILE}]\ncredential_process = \"{}\" --local-stack \"{}\" local credentials\n",
        exe.display(),
        dir.display()
    );
    for account in accounts {
        text += &format!(
            "\n[profile {}]\nrole_arn = {}\nsource_profile = {LOCAL_PROFILE}\nrole_session_name = xtask-local-stack\n",
            profile_of(Some(account)),
            role_arn(account)
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(path);
    }
    // Commands of one stack run side by side (tests do): each writes its own partial file,
    // then renames it into place, so none renames away another's.
    let partial = path.with_extension(format!("partial.{}", std::process::id()));
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The profile cdk acts in `account` with (`None`: moto's own).
pub fn profile_of(account: Option<&str>) -> String {
    match account {
        None => LOCAL_PROFILE.to_string(),
        Some(account) => format!("{LOCAL_PROFILE}-{account}"),
    }
}
