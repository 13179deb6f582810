//! The line of history a commit's images belong to, and where that line keeps them: main's
//! images in each image's repository, a pull request's in `pr/<repository>`, apart, so that
//! nothing a pull request's code wrote is ever retagged, read as build cache or deployed
//! as main's.

use serde::Serialize;

use crate::domain::{
    config::{Config, Image},
    retention,
};

/// The line of history a commit's images belong to; its tag (`main-<tag>`, `pr-<tag>`)
/// puts them under that line's lifecycle rule, so pull requests never shorten main's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Main,
    Pr,
}

impl Channel {
    /// The channel tag of the image tagged `tag`.
    pub fn tag(self, tag: &str) -> String {
        let prefix = match self {
            Channel::Main => retention::MAIN_PREFIX,
            Channel::Pr => retention::PR_PREFIX,
        };
        format!("{prefix}{tag}")
    }

    /// The repository this channel's images of `image` go to: the image's own for main,
    /// `pr/<repository>` for pull requests.
    pub fn repository(self, image: &Image) -> String {
        match self {
            Channel::Main => image.repository.clone(),
            Channel::Pr => Config::pr_repository(image),
        }
    }

    /// `main` or `pr`, as `--channel` and the CDK app's `imageChannel` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Main => "main",
            Channel::Pr => "pr",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
