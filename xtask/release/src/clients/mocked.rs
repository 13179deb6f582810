//! Clients of AWS APIs that answer from rules instead of the network (tests only): the
//! AWS SDK's own mocking crate, for what the local stack's moto does not implement.
//! Each rule's response is shaped as the API reference documents it; the test that
//! writes one names the page.

use aws_smithy_mocks::{Rule, RuleMode, create_mock_http_client};

/// An SDK client of crate `$sdk` whose calls `$rules` answer: no network, no retries.
macro_rules! client {
    ($sdk:ident, $rules:expr) => {{
        use $sdk::config::{BehaviorVersion, Credentials, Region};
        let mut config = $sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "mocked"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor($rules));
        config.set_retry_config(None);
        $sdk::Client::from_conf(config.build())
    }};
}

/// An ECR client that answers every call from `rules`, in order (`RuleMode::Sequential`);
/// a call no rule covers panics the test.
pub fn ecr(rules: &[&Rule]) -> aws_sdk_ecr::Client {
    client!(aws_sdk_ecr, rules)
}

/// An ECS client that answers every call from `rules`, in order.
pub fn ecs(rules: &[&Rule]) -> aws_sdk_ecs::Client {
    client!(aws_sdk_ecs, rules)
}

fn interceptor(rules: &[&Rule]) -> aws_smithy_mocks::MockResponseInterceptor {
    rules.iter().fold(aws_smithy_mocks::MockResponseInterceptor::new().rule_mode(RuleMode::Sequential), |i, rule| {
        i.with_rule(rule)
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecr::{Client, operation::describe_repositories::DescribeRepositoriesOutput, types::Repository};
    use aws_smithy_mocks::mock;

    fn one_repository() -> aws_smithy_mocks::Rule {
        mock!(Client::describe_repositories).then_output(|| {
            DescribeRepositoriesOutput::builder()
                .repositories(Repository::builder().repository_name("hello/app").build())
                .build()
        })
    }

    #[tokio::test]
    async fn a_mocked_client_answers_from_its_rules() {
        let client = super::ecr(&[&one_repository()]);
        let out = client.describe_repositories().send().await.unwrap();
        assert_eq!(out.repositories()[0].repository_name(), Some("hello/app"));
    }

    /// A test whose code makes a call it did not mock fails, rather than reaching a network.
    #[tokio::test]
    #[should_panic(expected = "no rules matched")]
    async fn a_call_no_rule_covers_fails_the_test() {
        let client = super::ecr(&[&one_repository()]);
        client.describe_repositories().send().await.unwrap();
        let _ = client.describe_repositories().send().await;
    }
}
