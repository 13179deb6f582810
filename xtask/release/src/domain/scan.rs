//! The scan gate's judgement, over plain values: what an image's scan status means (findings
//! ready, still running, or no result), how its severity counts compare with a threshold,
//! and whether a registry's scanning rules scan a repository on push.
//!
//! Statuses follow the ECR API reference, `ImageScanStatus`
//! (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageScanStatus.html);
//! severity keys `ImageScanFindings.findingSeverityCounts`
//! (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageScanFindings.html);
//! repository filters the ECR User Guide's "Filters to choose which repositories are scanned"
//! (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-scanning-filters.html).

/// Severities in ascending order, as ECR names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "UPPERCASE")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Where a key of `findingSeverityCounts` ranks. Basic scanning reports `INFORMATIONAL`
    /// to `CRITICAL` and `UNDEFINED` (the vulnerability's source gave it no priority);
    /// enhanced scanning (Amazon Inspector) the same five and `UNTRIAGED` (not rated yet).
    /// The two unrated ones rank with `INFORMATIONAL`: only `--severity INFORMATIONAL` fails
    /// on them, and the detail always names them. `None` for a key neither documents.
    pub fn of_key(key: &str) -> Option<Severity> {
        Some(match key {
            "INFORMATIONAL" | "UNDEFINED" | "UNTRIAGED" => Severity::Informational,
            "LOW" => Severity::Low,
            "MEDIUM" => Severity::Medium,
            "HIGH" => Severity::High,
            "CRITICAL" => Severity::Critical,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        };
        f.write_str(name)
    }
}

/// What `DescribeImageScanFindings` said about one image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// `imageScanStatus.status`, as the API spells it (`COMPLETE`, `ACTIVE`, …).
    pub status: Option<String>,
    /// `imageScanStatus.description`, empty when there is none.
    pub description: String,
    /// `imageScanFindings.findingSeverityCounts`: severity key and count.
    pub counts: Vec<(String, i32)>,
    /// `imageScanFindings.imageScanCompletedAt` is set: a scan has completed.
    pub completed: bool,
    /// How many `imageScanFindings.enhancedFindings` the page holds (Amazon Inspector's).
    pub enhanced_findings: usize,
}

/// What a scan result means for the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Findings are ready: `ok` unless one is at or above the threshold.
    Findings { ok: bool, detail: String },
    /// The scan is still running (or has not started): wait, saying this when time runs out.
    Waiting(String),
    /// There is no result and waiting will not bring one: fail with this sentence.
    NoResult(String),
}

/// Judges one scan result against `threshold`, by the documented meaning of its status:
/// `COMPLETE`, or `ACTIVE` (enhanced scanning, continuous) once a scan has completed or
/// findings exist, has findings; `IN_PROGRESS`, `PENDING` and an `ACTIVE` without either
/// are still running; every other status has no result and says what to do.
pub fn judge(scan: &Scan, threshold: Severity) -> Verdict {
    let status = scan.status.as_deref();
    let ready = match status {
        Some("COMPLETE") => true,
        Some("ACTIVE") => scan.completed || !scan.counts.is_empty() || scan.enhanced_findings > 0,
        _ => false,
    };
    if ready {
        return findings(scan, threshold);
    }
    let description = match scan.description.trim() {
        "" => String::new(),
        text => format!(" ({text})"),
    };
    let no_result = |what: &str| Verdict::NoResult(format!("{}: {what}", status.unwrap_or_default()));
    match status {
        None => Verdict::Waiting("no scan status yet".to_string()),
        Some("ACTIVE") => Verdict::Waiting("scan status ACTIVE, no scan completed yet".to_string()),
        Some(running @ ("IN_PROGRESS" | "PENDING")) => Verdict::Waiting(format!("scan status {running}")),
        Some("FAILED") => no_result(&format!(
            "the scan failed{description}, so there are no findings to judge; scan the image again (basic scanning: `aws ecr start-image-scan`)"
        )),
        Some("UNSUPPORTED_IMAGE") => no_result(&format!(
            "the image cannot be scanned{description}: the scanner does not support its media type, operating system or package manager; build it on a base image the scanner supports"
        )),
        Some("FINDINGS_UNAVAILABLE") => no_result(&format!(
            "the scan's findings are not available{description}; scan the image again, or check the scanner's state for the registry"
        )),
        Some("SCAN_ELIGIBILITY_EXPIRED") => no_result(&format!(
            "the image is no longer eligible for scanning{description}: Amazon Inspector's ECR re-scan duration has passed, so its findings are no longer kept up to date; lengthen the re-scan duration in Amazon Inspector, or rebuild with `cargo xtask push --rebuild`"
        )),
        Some("LIMIT_EXCEEDED") => no_result(&format!(
            "ECR did not scan the image{description}: a scan quota was reached (basic scanning scans an image at most once in 24 hours); scan it again once the quota allows"
        )),
        Some("IMAGE_ARCHIVED") => no_result(&format!(
            "the image is archived{description}, and archived images are not scanned; restore it to the standard storage class, which scans it on restore when scan on push is on"
        )),
        Some(other) => Verdict::NoResult(format!(
            "{other}: a scan status this check does not know{description}; it cannot tell whether findings exist, so update xtask"
        )),
    }
}

/// The findings of a ready scan against `threshold`.
fn findings(scan: &Scan, threshold: Severity) -> Verdict {
    let mut counts: Vec<(Option<Severity>, &str, i32)> =
        scan.counts.iter().map(|(key, count)| (Severity::of_key(key), key.as_str(), *count)).collect();
    // Most severe first; unknown keys last.
    counts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let text = |(_, key, count): &(Option<Severity>, &str, i32)| format!("{count} {key}");
    let all: Vec<String> = counts.iter().map(text).collect();
    let blocking: Vec<String> =
        counts.iter().filter(|(rank, _, count)| *count > 0 && rank.is_some_and(|r| r >= threshold)).map(text).collect();
    let continuous =
        if scan.status.as_deref() == Some("ACTIVE") { "; enhanced scanning keeps them up to date" } else { "" };
    if blocking.is_empty() {
        let summary = if all.is_empty() { "no findings".to_string() } else { all.join(", ") };
        Verdict::Findings { ok: true, detail: format!("{summary} (threshold {threshold}{continuous})") }
    } else {
        Verdict::Findings {
            ok: false,
            detail: format!("{} at or above {threshold}: fix them or raise --severity", blocking.join(", ")),
        }
    }
}

/// The registry's scan type (`GetRegistryScanningConfiguration`'s `scanType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanType {
    Basic,
    /// Amazon Inspector: continuous scanning; only the registry's rules choose what is scanned.
    Enhanced,
}

impl std::fmt::Display for ScanType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScanType::Basic => "basic",
            ScanType::Enhanced => "enhanced",
        })
    }
}

/// How often a registry rule scans the repositories its filters match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Frequency {
    Manual,
    ScanOnPush,
    /// Enhanced scanning only: on push, and again as new vulnerabilities are published.
    ContinuousScan,
}

/// One rule of the registry's scanning configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub frequency: Frequency,
    /// The rule's `WILDCARD` repository filters.
    pub filters: Vec<String>,
}

/// A registry's scanning configuration (`GetRegistryScanningConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryScanning {
    pub scan_type: ScanType,
    pub rules: Vec<Rule>,
}

impl RegistryScanning {
    /// The rule that scans `repository` and the filter that matched it: where several match,
    /// the continuous one wins over scan on push, as ECR enforces. `None` when none does
    /// (basic scanning then scans manually; enhanced scanning not at all).
    pub fn rule_for(&self, repository: &str) -> Option<(Frequency, &str)> {
        self.rules
            .iter()
            .filter(|rule| rule.frequency != Frequency::Manual)
            .filter_map(|rule| {
                let filter = rule.filters.iter().find(|f| filter_matches(f, repository))?;
                Some((rule.frequency, filter.as_str()))
            })
            .max_by_key(|(frequency, _)| *frequency)
    }
}

/// Does a scanning filter match `repository`, as ECR evaluates it? A filter without `*`
/// matches every name that contains it; with `*`, the whole name, each `*` standing for
/// zero or more characters.
pub fn filter_matches(filter: &str, repository: &str) -> bool {
    if !filter.contains('*') {
        return repository.contains(filter);
    }
    let parts: Vec<&str> = filter.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    let Some(mut rest) = repository.strip_prefix(first) else { return false };
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// What is known of the registry's scanning configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    Read(RegistryScanning),
    /// It could not be read (the API is not there, or not allowed): why.
    Unknown(String),
}

/// Whether new images of a repository are scanned on push, and by what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanOnPush {
    /// A rule of the registry's scanning configuration.
    Rule { scan_type: ScanType, frequency: Frequency, filter: String },
    /// The repository's own flag (basic scanning, or a registry whose configuration is unknown).
    RepositoryFlag { registry_unknown: Option<String> },
    /// Nothing scans it on push: why.
    Off(String),
}

impl ScanOnPush {
    pub fn on(&self) -> bool {
        !matches!(self, ScanOnPush::Off(_))
    }
}

impl std::fmt::Display for ScanOnPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanOnPush::Rule { scan_type, frequency, filter } => {
                let continuous = if *frequency == Frequency::ContinuousScan { ", continuous" } else { "" };
                write!(f, "scan on push (the registry's {scan_type} scanning, filter `{filter}`{continuous})")
            }
            ScanOnPush::RepositoryFlag { registry_unknown: None } => {
                f.write_str("scan on push (the repository's own flag)")
            }
            ScanOnPush::RepositoryFlag { registry_unknown: Some(why) } => write!(
                f,
                "scan on push (the repository's own flag; the registry's scanning configuration is unknown: {why})"
            ),
            ScanOnPush::Off(why) => write!(f, "scan on push is off ({why})"),
        }
    }
}

/// Scan on push for `repository`: a registry rule, else (basic scanning, or a registry whose
/// configuration is unknown) the repository's own flag. Enhanced scanning scans only what its
/// rules match: the repository's flag does not count there.
pub fn scan_on_push(registry: &Registry, repository: &str, own_flag: bool) -> ScanOnPush {
    let scanning = match registry {
        Registry::Unknown(why) if own_flag => {
            return ScanOnPush::RepositoryFlag { registry_unknown: Some(why.clone()) };
        }
        Registry::Unknown(why) => {
            return ScanOnPush::Off(format!(
                "the repository's own flag is off, and the registry's scanning configuration is unknown: {why}"
            ));
        }
        Registry::Read(scanning) => scanning,
    };
    if let Some((frequency, filter)) = scanning.rule_for(repository) {
        return ScanOnPush::Rule { scan_type: scanning.scan_type, frequency, filter: filter.to_string() };
    }
    match (scanning.scan_type, own_flag) {
        (ScanType::Basic, true) => ScanOnPush::RepositoryFlag { registry_unknown: None },
        (ScanType::Basic, false) => {
            ScanOnPush::Off("no rule of the registry's basic scanning matches it, and its own flag is off".to_string())
        }
        (ScanType::Enhanced, _) => ScanOnPush::Off(
            "no rule of the registry's enhanced scanning matches it, and enhanced scanning ignores the repository's own flag"
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of the ECR User Guide's "Filter wildcards": filters down, names across.
    #[test]
    fn filters_match_as_the_user_guide_tables_them() {
        let names = ["prod", "repo-prod", "prod-repo", "repo-prod-repo", "prodrepo"];
        let table = [
            ("prod", [true, true, true, true, true]),
            ("*prod", [true, true, false, false, false]),
            ("prod*", [true, false, true, false, true]),
            ("*prod*", [true, true, true, true, true]),
            ("prod*repo", [false, false, true, false, true]),
        ];
        for (filter, expected) in table {
            let got: Vec<bool> = names.iter().map(|name| filter_matches(filter, name)).collect();
            assert_eq!(got, expected, "filter {filter}");
        }
        // A `*` stands for zero or more characters, anywhere, and the name must end as the filter does.
        assert!(filter_matches("*", "hello/app"));
        assert!(filter_matches("hello/*", "hello/app"));
        assert!(!filter_matches("hello/*", "pr/hello/app"));
        assert!(filter_matches("*hello/*", "pr/hello/app"));
        assert!(filter_matches("a*b*c", "abc"));
        assert!(!filter_matches("a*b*c", "acb"));
        assert!(!filter_matches("ab*ba", "aba"), "the prefix and suffix may not overlap");
    }

    fn registry(scan_type: ScanType, rules: &[(Frequency, &[&str])]) -> Registry {
        Registry::Read(RegistryScanning {
            scan_type,
            rules: rules
                .iter()
                .map(|(frequency, filters)| Rule {
                    frequency: *frequency,
                    filters: filters.iter().map(|f| f.to_string()).collect(),
                })
                .collect(),
        })
    }

    #[test]
    fn scan_on_push_comes_from_a_registry_rule_or_the_repositorys_own_flag() {
        use Frequency::*;
        let basic = registry(ScanType::Basic, &[(ScanOnPush, &["other", "hello/*"])]);
        let rule = scan_on_push(&basic, "hello/app", false);
        assert_eq!(rule.to_string(), "scan on push (the registry's basic scanning, filter `hello/*`)");
        // Basic scanning without a matching rule: the repository's own (deprecated) flag.
        let flag = scan_on_push(&basic, "else/app", true);
        assert_eq!(flag.to_string(), "scan on push (the repository's own flag)");
        let off = scan_on_push(&basic, "else/app", false);
        assert!(!off.on());
        assert_eq!(
            off.to_string(),
            "scan on push is off (no rule of the registry's basic scanning matches it, and its own flag is off)"
        );
        // Enhanced scanning: the continuous rule wins where both match; the flag never counts.
        let enhanced = registry(ScanType::Enhanced, &[(ScanOnPush, &["hello"]), (ContinuousScan, &["*/app"])]);
        assert_eq!(
            scan_on_push(&enhanced, "hello/app", false),
            super::ScanOnPush::Rule {
                scan_type: ScanType::Enhanced,
                frequency: ContinuousScan,
                filter: "*/app".into()
            }
        );
        assert_eq!(
            scan_on_push(&enhanced, "hello/worker", false).to_string(),
            "scan on push (the registry's enhanced scanning, filter `hello`)"
        );
        let ignored = scan_on_push(&enhanced, "else/worker", true);
        assert!(!ignored.on());
        assert!(ignored.to_string().contains("enhanced scanning ignores the repository's own flag"), "{ignored}");
        // A MANUAL rule scans nothing on push.
        let manual = registry(ScanType::Basic, &[(Manual, &["*"])]);
        assert!(!scan_on_push(&manual, "hello/app", false).on());
        // An unknown configuration: the repository's flag, saying why.
        let unknown = Registry::Unknown("not implemented".into());
        assert_eq!(
            scan_on_push(&unknown, "hello/app", true).to_string(),
            "scan on push (the repository's own flag; the registry's scanning configuration is unknown: not implemented)"
        );
        assert!(!scan_on_push(&unknown, "hello/app", false).on());
    }

    fn scan(status: &str, counts: &[(&str, i32)]) -> Scan {
        Scan {
            status: Some(status.to_string()),
            counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Scan::default()
        }
    }

    #[test]
    fn complete_findings_pass_below_the_threshold_and_fail_at_it() {
        let found = scan("COMPLETE", &[("LOW", 3), ("CRITICAL", 2), ("HIGH", 0)]);
        assert_eq!(
            judge(&found, Severity::Critical),
            Verdict::Findings {
                ok: false,
                detail: "2 CRITICAL at or above CRITICAL: fix them or raise --severity".into()
            }
        );
        assert_eq!(
            judge(&found, Severity::Low),
            Verdict::Findings {
                ok: false,
                detail: "2 CRITICAL, 3 LOW at or above LOW: fix them or raise --severity".into()
            }
        );
        let clean = scan("COMPLETE", &[("HIGH", 1)]);
        assert_eq!(
            judge(&clean, Severity::Critical),
            Verdict::Findings { ok: true, detail: "1 HIGH (threshold CRITICAL)".into() }
        );
        assert_eq!(
            judge(&scan("COMPLETE", &[]), Severity::Low),
            Verdict::Findings { ok: true, detail: "no findings (threshold LOW)".into() }
        );
    }

    #[test]
    fn unrated_findings_rank_with_informational() {
        let unrated = scan("ACTIVE", &[("UNTRIAGED", 4), ("UNDEFINED", 1), ("LOW", 1)]);
        let Verdict::Findings { ok: true, detail } = judge(&unrated, Severity::Medium) else {
            panic!("must pass at MEDIUM")
        };
        assert_eq!(
            detail,
            "1 LOW, 1 UNDEFINED, 4 UNTRIAGED (threshold MEDIUM; enhanced scanning keeps them up to date)"
        );
        assert!(matches!(judge(&unrated, Severity::Low), Verdict::Findings { ok: false, .. }));
        assert_eq!(
            judge(&unrated, Severity::Informational),
            Verdict::Findings {
                ok: false,
                detail: "1 LOW, 1 UNDEFINED, 4 UNTRIAGED at or above INFORMATIONAL: fix them or raise --severity"
                    .into()
            }
        );
    }

    #[test]
    fn active_has_findings_once_a_scan_completed_or_findings_exist() {
        let waiting = scan("ACTIVE", &[]);
        assert_eq!(
            judge(&waiting, Severity::Critical),
            Verdict::Waiting("scan status ACTIVE, no scan completed yet".into())
        );
        let completed = Scan { completed: true, ..waiting.clone() };
        assert!(matches!(judge(&completed, Severity::Critical), Verdict::Findings { ok: true, .. }));
        let listed = Scan { enhanced_findings: 1, ..waiting };
        assert!(matches!(judge(&listed, Severity::Critical), Verdict::Findings { ok: true, .. }));
    }

    #[test]
    fn running_statuses_wait() {
        for status in ["IN_PROGRESS", "PENDING"] {
            assert_eq!(
                judge(&scan(status, &[]), Severity::Critical),
                Verdict::Waiting(format!("scan status {status}"))
            );
        }
        assert!(matches!(judge(&Scan::default(), Severity::Critical), Verdict::Waiting(_)));
    }

    #[test]
    fn each_status_without_a_result_fails_with_its_own_sentence() {
        let statuses = [
            ("FAILED", "the scan failed"),
            ("UNSUPPORTED_IMAGE", "the image cannot be scanned"),
            ("FINDINGS_UNAVAILABLE", "the scan's findings are not available"),
            ("SCAN_ELIGIBILITY_EXPIRED", "the image is no longer eligible for scanning"),
            ("LIMIT_EXCEEDED", "a scan quota was reached"),
            ("IMAGE_ARCHIVED", "the image is archived"),
            ("SOMETHING_NEW", "a scan status this check does not know"),
        ];
        let mut sentences = std::collections::BTreeSet::new();
        for (status, says) in statuses {
            let found = Scan { description: "from ECR".into(), ..scan(status, &[("CRITICAL", 1)]) };
            let Verdict::NoResult(sentence) = judge(&found, Severity::Critical) else {
                panic!("{status} must have no result")
            };
            assert!(sentence.starts_with(&format!("{status}: ")), "{sentence}");
            assert!(sentence.contains(says), "{status}: {sentence}");
            assert!(sentence.contains("(from ECR)"), "{status} keeps ECR's description: {sentence}");
            sentences.insert(sentence);
        }
        assert_eq!(sentences.len(), statuses.len(), "each sentence is its own");
    }
}
