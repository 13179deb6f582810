//! `IMAGE:TAG` arguments of the tag commands: a configured image's name and a tag.

use anyhow::{Result, bail};

use xtask_release::{domain::config::Image, domain::workspace::Workspace};

/// The configured image and the tag (or `sha256:` digest) `arg` names.
pub fn parse<'w>(ws: &'w Workspace, arg: &str) -> Result<(&'w Image, String)> {
    let Some((name, reference)) = arg.split_once(':') else {
        bail!("`{arg}` is not IMAGE:TAG; give a configured image's name and a tag, such as `app:latest`");
    };
    let image = ws.config.select_images(&[name.to_string()])?[0];
    if !reference.starts_with("sha256:") {
        check_tag(reference)?;
    }
    Ok((image, reference.to_string()))
}

/// A tag as the OCI distribution spec allows it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`. ECR's
/// API takes tags of up to 300 characters (`ImageIdentifier.imageTag`), but a registry client
/// such as docker pulls none longer than 128.
pub fn check_tag(tag: &str) -> Result<()> {
    let valid = (1..=128).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        bail!("`{tag}` is not a tag: use up to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`");
    }
    Ok(())
}
