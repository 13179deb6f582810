//! After the AWS API restarts: does the registry's storage agree with the emulated ECR?
//! ECR is the record. A tag the registry holds in a repository ECR lacks means ECR lost
//! state: reported, in one line, with the way out. A tag ECR names another image under is
//! put to the registry from ECR (as the sync does for a retag) when the registry holds
//! that image's blobs, and reported otherwise. A tag the registry holds and ECR does not
//! is no disagreement (it was deleted through ECR, which the registry never hears of), nor
//! is a tag ECR holds and the registry does not (the sync puts such a tag, a retag
//! through ECR, to the registry when a client first asks for it).

use anyhow::{Context, Result};
use serde::Deserialize;
use xtask_release::clients::{ecr, http};

use crate::{ports::Ports, sync::Sync};

/// What the check found in one account's registry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    /// Tags checked.
    pub tags: usize,
    /// `repository:tag` the registry now serves as ECR names it.
    pub repaired: Vec<String>,
    /// `repository:tag (why)` that could not be.
    pub disagree: Vec<String>,
}

#[derive(Deserialize)]
struct Catalog {
    repositories: Vec<String>,
}

#[derive(Deserialize)]
struct Tags {
    tags: Option<Vec<String>>,
}

/// Checks the registry of `account` (`None`: moto's own) against its ECR, and repairs what it can.
pub async fn check(ports: &Ports, region: &str, account: Option<&str>) -> Result<Agreement> {
    let sync = Sync::new(ports, region, account).await?;
    let url = format!("http://127.0.0.1:{}/v2", ports.registry_of(account)?.registry_backend);
    let registry = http::Client::new().with_credentials(&url, ecr::authorization(&sync.ecr).await?.basic_header())?;
    let json = |path: String| {
        let (registry, url) = (registry.clone(), format!("{url}/{path}"));
        async move {
            let response = registry.get(&url, &[]).await?;
            anyhow::ensure!(response.status.is_success(), "GET {url}: {}", response.status);
            Ok::<_, anyhow::Error>(response.body)
        }
    };
    let catalog: Catalog =
        serde_json::from_slice(&json("_catalog?n=1000".into()).await?).context("the registry's catalog is not JSON")?;
    let mut found = Agreement::default();
    for repository in catalog.repositories {
        let tags: Tags = serde_json::from_slice(&json(format!("{repository}/tags/list")).await?)
            .with_context(|| format!("the registry's tags of {repository} are not JSON"))?;
        let tags = tags.tags.unwrap_or_default();
        found.tags += tags.len();
        if tags.is_empty() {
            continue;
        }
        if !ecr::repository_exists(&sync.ecr, &repository).await? {
            found.disagree.extend(tags.iter().map(|tag| format!("{repository}:{tag} (no such ECR repository)")));
            continue;
        }
        for tag in tags {
            let manifest_url = format!("{url}/{repository}/manifests/{tag}");
            let response = registry.get(&manifest_url, &[("accept", &ecr::MANIFEST_TYPES.join(", "))]).await?;
            anyhow::ensure!(response.status.is_success(), "GET {manifest_url}: {}", response.status);
            let digest = response.headers.get("docker-content-digest").and_then(|v| v.to_str().ok());
            let in_ecr = ecr::image_by_tag(&sync.ecr, &repository, &tag).await?;
            match in_ecr.and_then(|d| d.image_digest().map(str::to_owned)) {
                Some(in_ecr) if Some(in_ecr.as_str()) != digest => {
                    if sync.materialize(&repository, &tag).await? {
                        found.repaired.push(format!("{repository}:{tag}"));
                    } else {
                        found.disagree.push(format!("{repository}:{tag} (ECR names {in_ecr})"));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(found)
}

impl Agreement {
    /// The line `local up` prints, if there is anything to say; `registry` names it.
    pub fn line(&self, registry: &str) -> Option<String> {
        let few = |all: &[String]| {
            let shown: Vec<&str> = all.iter().take(3).map(String::as_str).collect();
            let more = all.len().saturating_sub(3);
            if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
        };
        match (self.repaired.is_empty(), self.disagree.is_empty()) {
            (true, true) => None,
            (false, true) => Some(format!(
                "{registry}: {} of {} tags named another image than ECR does and now serve ECR's: {}",
                self.repaired.len(),
                self.tags,
                few(&self.repaired)
            )),
            (_, false) => Some(format!(
                "{registry}: {} of {} tags disagree with ECR and cannot be repaired: {}; run `cargo xtask local down --purge` to start clean",
                self.disagree.len(),
                self.tags,
                few(&self.disagree)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_says_what_was_repaired_or_what_disagrees() {
        assert_eq!(Agreement { tags: 3, ..Default::default() }.line("registry"), None);
        let repaired = Agreement { tags: 3, repaired: vec!["a:1".into()], disagree: vec![] };
        assert_eq!(
            repaired.line("registry").unwrap(),
            "registry: 1 of 3 tags named another image than ECR does and now serve ECR's: a:1"
        );
        let disagree = Agreement {
            tags: 5,
            repaired: vec![],
            disagree: (1..=5).map(|i| format!("a:{i} (no such ECR repository)")).collect(),
        };
        let line = disagree.line("registry-111111111111").unwrap();
        assert!(
            line.starts_with("registry-111111111111: 5 of 5 tags disagree with ECR and cannot be repaired: a:1 (no such ECR repository), a:2"),
            "{line}"
        );
        assert!(line.contains("and 2 more; run `cargo xtask local down --purge` to start clean"), "{line}");
    }
}
