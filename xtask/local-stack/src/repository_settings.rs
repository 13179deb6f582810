//! moto's CloudFormation creates an `AWS::ECR::Repository` with its name and tag
//! mutability but drops `ImageScanningConfiguration` and `LifecyclePolicy`. On the
//! local stack only, those settings are applied from the synthesized template
//! through the ECR API, so `check --stage local` sees what real ECR would show.

use std::path::Path;

use anyhow::{Context, Result};

use xtask_release::clients::aws::SdkResultExt;

pub async fn apply(client: &aws_sdk_ecr::Client, template: &Path) -> Result<()> {
    let text = std::fs::read_to_string(template).with_context(|| format!("cannot read {}", template.display()))?;
    let template: serde_json::Value = serde_json::from_str(&text).context("the template is not JSON")?;
    let resources = template["Resources"].as_object().cloned().unwrap_or_default();
    for resource in resources.values().filter(|r| r["Type"] == "AWS::ECR::Repository") {
        let props = &resource["Properties"];
        let Some(name) = props["RepositoryName"].as_str() else { continue };
        if let Some(scan) = props["ImageScanningConfiguration"]["ScanOnPush"].as_bool() {
            let config = aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(scan).build();
            client
                .put_image_scanning_configuration()
                .repository_name(name)
                .image_scanning_configuration(config)
                .send()
                .await
                .sdk_context(|| format!("cannot set scan on push of `{name}`"))?;
        }
        if let Some(policy) = props["LifecyclePolicy"]["LifecyclePolicyText"].as_str() {
            client
                .put_lifecycle_policy()
                .repository_name(name)
                .lifecycle_policy_text(policy)
                .send()
                .await
                .sdk_context(|| format!("cannot set the lifecycle policy of `{name}`"))?;
        }
    }
    Ok(())
}
