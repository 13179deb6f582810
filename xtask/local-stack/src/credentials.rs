//! The local stack's credentials: what the emulated API accepts (they grant nothing
//! anywhere else), handed to cdk by `credential_process` so they never reach an
//! environment, an argument list or a file, and the profiles that act in further accounts
//! by assuming a role there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::quote;

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
    let mut text = format!("[profile {LOCAL_PROFILE}]\ncredential_process = {}\n", credential_process(&exe, dir)?);
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
    // Commands of one stack run side by side (tests do): each writes its own partial file.
    crate::files::write_whole(&path, text.as_bytes())?;
    Ok(path)
}

/// The `credential_process` command line: `exe --local-stack dir local credentials`. The
/// SDKs run it through a shell (the CLI splits it as a shell would), so each word is
/// quoted for one. The file is INI: a value is one line, and the JavaScript SDK (cdk's)
/// cuts it at a `#` or `;` after whitespace, a comment to it; such paths are refused.
fn credential_process(exe: &Path, dir: &Path) -> Result<String> {
    let words =
        [quote::text(exe, "this program's path")?, "--local-stack", quote::text(dir, "the local stack's directory")?];
    let line = words.map(quote::shell).join(" ") + " local credentials";
    let comment = line.as_bytes().windows(2).any(|w| w[0].is_ascii_whitespace() && matches!(w[1], b'#' | b';'));
    if comment || line.chars().any(char::is_control) {
        bail!(
            "cannot write the local stack's AWS profile: the path of this program ({}) or of the stack's directory ({}) holds a line break, a control character, or a `#` or `;` after a space, which an AWS config file cannot carry; use a local stack directory (--local-stack, XTASK_LOCAL_STACK) and a checkout whose paths have none",
            exe.display(),
            dir.display()
        );
    }
    Ok(line)
}

/// The profile cdk acts in `account` with (`None`: moto's own).
pub fn profile_of(account: Option<&str>) -> String {
    match account {
        None => LOCAL_PROFILE.to_string(),
        Some(account) => format!("{LOCAL_PROFILE}-{account}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `credential_process` as the JavaScript SDK reads it from the file, run as the SDKs
    /// run it (`sh -c`), with a program that prints its arguments one a line.
    #[test]
    fn credential_process_reaches_the_program_whole_through_a_shell() {
        let sh = xshell::Shell::new().unwrap();
        let tmp = sh.create_temp_dir().unwrap();
        let dir = tmp.path().join(r#"stack a'b"c$HOME`d`\e;f"#);
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("print args");
        std::fs::write(&exe, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let line = format!("credential_process = {}", credential_process(&exe, &dir).unwrap());
        // What @smithy/shared-ini-file-loader keeps of the line: up to a comment, trimmed.
        let cut = line.find(" #").or(line.find(" ;")).unwrap_or(line.len());
        let value = line[..cut].split_once('=').unwrap().1.trim().to_string();
        let out = xshell::cmd!(sh, "sh -c {value}").read().unwrap();
        assert_eq!(out, format!("--local-stack\n{}\nlocal\ncredentials", dir.display()));
    }

    #[test]
    fn a_path_the_config_file_cannot_carry_is_refused() {
        let exe = Path::new("/usr/bin/xtask");
        for dir in ["/tmp/a #b", "/tmp/a ;b", "/tmp/a\nb"] {
            let err = credential_process(exe, Path::new(dir)).unwrap_err().to_string();
            assert!(err.contains("which an AWS config file cannot carry"), "{dir:?}: {err}");
        }
    }
}
