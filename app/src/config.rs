//! The service's configuration, read from the environment once at start-up.

const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The port to listen on, on every interface; 0 asks for an ephemeral one.
    pub port: u16,
    /// The commit the image was built from (`APP_COMMIT`, set in the Dockerfile).
    pub commit: Option<String>,
    /// The tag the image was deployed as (`APP_IMAGE_TAG`, set by the task definition).
    /// An image is reused for a later commit when none of its inputs changed, so this
    /// can name a descendant of `commit`; both are true.
    pub image_tag: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// `lookup` reads a variable; unset and empty (after trimming) are the same.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let get = |name| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let port = match get("PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| format!("invalid PORT {p:?}: expected a port number from 0 to 65535"))?,
        };
        Ok(Config { port, commit: get("APP_COMMIT"), image_tag: get("APP_IMAGE_TAG") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults() {
        assert_eq!(config(&[]), Ok(Config { port: 8080, commit: None, image_tag: None }));
    }

    #[test]
    fn overrides_are_trimmed_and_empty_is_unset() {
        let got = config(&[("PORT", " 18080 "), ("APP_COMMIT", "abc"), ("APP_IMAGE_TAG", " ")]);
        assert_eq!(got, Ok(Config { port: 18080, commit: Some("abc".into()), image_tag: None }));
        assert_eq!(config(&[("PORT", "0")]).map(|c| c.port), Ok(0));
        assert_eq!(config(&[("PORT", "")]).map(|c| c.port), Ok(8080));
    }

    #[test]
    fn refuses_a_bad_port() {
        for bad in ["http", "65536", "-1", "80 80"] {
            let err = config(&[("PORT", bad)]).unwrap_err();
            assert!(err.starts_with("invalid PORT") && !err.contains('\n'), "{bad}: {err}");
        }
    }
}
