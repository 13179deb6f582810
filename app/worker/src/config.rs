//! The worker's configuration, read from the environment once at start-up.

use std::time::Duration;

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// A day: longer intervals are surely a mistake.
const MAX_INTERVAL_SECS: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The port to listen on, on every interface; 0 asks for an ephemeral one.
    pub port: u16,
    /// How often the job runs (`WORK_INTERVAL_SECS`).
    pub interval: Duration,
    /// The commit the image was built from (`APP_COMMIT`).
    pub commit: Option<String>,
    /// The tag the image was deployed as (`APP_IMAGE_TAG`).
    pub image_tag: Option<String>,
}

impl Config {
    /// `lookup` reads a variable, such as [`env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let interval = match var(&lookup, "WORK_INTERVAL_SECS") {
            None => DEFAULT_INTERVAL,
            Some(s) => match s.parse() {
                Ok(secs @ 1..=MAX_INTERVAL_SECS) => Duration::from_secs(secs),
                _ => {
                    return Err(format!("invalid WORK_INTERVAL_SECS {s:?}: expected 1 to {MAX_INTERVAL_SECS} seconds"));
                }
            },
        };
        Ok(Config {
            port: port(&lookup)?,
            interval,
            commit: var(&lookup, "APP_COMMIT"),
            image_tag: var(&lookup, "APP_IMAGE_TAG"),
        })
    }
}

/// `PORT`, on its own: all that `worker healthcheck` needs.
pub fn port(lookup: impl Fn(&str) -> Option<String>) -> Result<u16, String> {
    match var(&lookup, "PORT") {
        None => Ok(DEFAULT_PORT),
        Some(p) => p.parse().map_err(|_| format!("invalid PORT {p:?}: expected a port number from 0 to 65535")),
    }
}

/// Reads a variable of this process's environment.
pub fn env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// A variable's value, trimmed; unset and empty are the same.
fn var(lookup: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults() {
        let expected = Config { port: 8080, interval: Duration::from_secs(30), commit: None, image_tag: None };
        assert_eq!(config(&[]), Ok(expected.clone()));
        assert_eq!(config(&[("PORT", " "), ("WORK_INTERVAL_SECS", ""), ("APP_COMMIT", "")]), Ok(expected));
    }

    #[test]
    fn overrides() {
        let got =
            config(&[("PORT", "0"), ("WORK_INTERVAL_SECS", " 5 "), ("APP_COMMIT", "abc"), ("APP_IMAGE_TAG", "t")]);
        let expected = Config {
            port: 0,
            interval: Duration::from_secs(5),
            commit: Some("abc".into()),
            image_tag: Some("t".into()),
        };
        assert_eq!(got, Ok(expected));
    }

    #[test]
    fn refuses_bad_values() {
        let bad = [("PORT", "http"), ("PORT", "65536"), ("PORT", "-1"), ("WORK_INTERVAL_SECS", "0")];
        let more = [("WORK_INTERVAL_SECS", "1.5"), ("WORK_INTERVAL_SECS", "86401"), ("WORK_INTERVAL_SECS", "-1")];
        for (name, bad) in bad.into_iter().chain(more) {
            let err = config(&[(name, bad)]).unwrap_err();
            assert!(err.starts_with(&format!("invalid {name} ")) && !err.contains('\n'), "{bad}: {err}");
        }
    }
}
