//! `.dockerignore` rules with Docker's semantics, which are not gitignore's.
//!
//! Two pieces of Docker are mirrored here, line by line:
//! - the docker CLI's reading of the file (`ignorefile.ReadAll`): a UTF-8 BOM is dropped, a line
//!   starting with `#` is a comment (checked *before* trimming), lines are trimmed, blank lines
//!   skipped, each pattern is cleaned like Go's `filepath.Clean` and one leading `/` removed;
//! - moby's `patternmatcher`: each pattern is cleaned again and compiled to an exact, prefix,
//!   suffix or regular-expression match exactly as `Pattern.compile` does, and the last
//!   pattern that matches a path decides (a `!` pattern re-includes).
//!
//! The regular-expression case is translated as `compile` does (`*` is `[^/]*`, `?` is `[^/]`,
//! `**` is `(.*/)?`, a trailing `**` is `.*`, `[...]` a class, `\x` the literal `x`, and an
//! unescaped `^` the start anchor it is in Go's regexp), with each literal character escaped for
//! `regex_lite`, whose syntax differs from Go's in what may follow a `\` or sit inside `[...]`.
//! A few constructs that Docker accepts but reads as something other than a glob (a `*` or `?`
//! inside `[...]`, `[:class:]`, `\d`-style escapes) are refused with an error here instead of
//! being matched differently.

use std::fmt;

use regex_lite::Regex;

/// A pattern line read from a `.dockerignore`, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreLine {
    pub line: usize,
    pub pattern: String,
}

/// Reads a `.dockerignore` the way the docker CLI does (`ignorefile.ReadAll`).
///
/// Fails with the number of a line that is not UTF-8 (comments excepted).
pub fn read_dockerignore(content: &[u8]) -> Result<Vec<IgnoreLine>, usize> {
    let mut lines = Vec::new();
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    // `bufio.ScanLines`: split on '\n', drop one trailing '\r', no empty token after the last '\n'.
    let content = content.strip_suffix(b"\n").unwrap_or(content);
    if content.is_empty() {
        return Ok(lines);
    }
    for (index, raw) in content.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.starts_with(b"#") {
            continue;
        }
        let line = index + 1;
        let text = std::str::from_utf8(raw).map_err(|_| line)?;
        let pattern = text.trim();
        if pattern.is_empty() {
            continue;
        }
        let (invert, rest) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, pattern),
        };
        let mut cleaned = String::new();
        if !rest.is_empty() {
            cleaned = go_clean(rest);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        let pattern = if invert { format!("!{cleaned}") } else { cleaned };
        lines.push(IgnoreLine { line, pattern });
    }
    Ok(lines)
}

/// A pattern that `patternmatcher.New` (or this module) refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// Position of the offending pattern in the list given to [`PatternMatcher::new`].
    pub index: usize,
    pub pattern: String,
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pattern {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for PatternError {}

/// The result of matching a directory, handed to its children
/// (`patternmatcher.MatchInfo`): which patterns matched the directory or one of its parents.
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// An ordered list of patterns (`patternmatcher.PatternMatcher`).
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern without its `!`.
    cleaned: String,
    /// Number of `/`-separated parts of `cleaned` (`len(pattern.dirs)`).
    dirs: usize,
    exclusion: bool,
    kind: MatchKind,
}

/// moby's `matchType`, with the compiled regexp of the `regexpMatch` case.
#[derive(Debug, Clone)]
enum MatchKind {
    Exact,
    Prefix,
    Suffix,
    Regex(Regex),
}

impl PatternMatcher {
    /// Compiles `patterns` like `patternmatcher.New`: each is trimmed, blank ones skipped,
    /// cleaned like `filepath.Clean`, and a leading `!` makes it an exception.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PatternMatcher, PatternError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for (index, raw) in patterns.iter().enumerate() {
            let raw = raw.as_ref();
            let error = |reason: String| PatternError { index, pattern: raw.to_string(), reason };
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let mut p = go_clean(trimmed);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(error("a lone `!` excludes nothing; remove the line or add a pattern after it".into()));
                }
                exclusion = true;
                p = rest.to_string();
            }
            check_glob_syntax(&p).map_err(error)?;
            let kind = compile(&p).map_err(error)?;
            let dirs = p.split('/').count();
            compiled.push(Pattern { cleaned: p, dirs, exclusion, kind });
        }
        Ok(PatternMatcher { patterns: compiled })
    }

    /// `Exclusions`: does any pattern start with `!`?
    #[cfg(test)]
    fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Could an exception re-include something below the excluded directory `dir`?
    ///
    /// This is moby's test in `archive.TarWithOptions` for descending into an excluded
    /// directory: some `!` pattern, read as text, starts with `dir/`. (So `!**/keep` does not
    /// make Docker look inside an excluded `vendor/`, and neither does it here.)
    pub fn exception_may_match_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns.iter().filter(|p| p.exclusion).any(|p| format!("{}/", p.cleaned).starts_with(&dir_slash))
    }

    /// fsutil's test for walking into a directory its patterns leave out (its `FilterFS`):
    /// looking at the `!` exceptions (`exceptions`, for exclude patterns) or at the patterns
    /// that are not exceptions (for include patterns). One with a wildcard, once a trailing
    /// `/**` or `/*` is cut, makes every directory worth walking; else one must start, read
    /// as text, with `dir/`.
    pub fn fsutil_may_match_below(&self, dir: &str, exceptions: bool) -> bool {
        let trimmed = |p: &Pattern| -> String {
            let text = p.cleaned.strip_suffix("/**").unwrap_or(&p.cleaned);
            text.strip_suffix("/*").unwrap_or(text).to_string()
        };
        let candidates: Vec<String> = self.patterns.iter().filter(|p| p.exclusion == exceptions).map(trimmed).collect();
        if candidates.iter().any(|p| p.contains(['*', '[', ']', '?', '^', '\\'])) {
            return true;
        }
        let dir_slash = format!("{dir}/");
        candidates.iter().any(|p| format!("{p}/").starts_with(&dir_slash))
    }

    /// `MatchesExact`: is `path` excluded, looking at the path alone (no parent directories)?
    #[cfg(test)]
    fn matches_exact(&self, path: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion == matched && pattern.matches(path) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// `MatchesOrParentMatches`: is `path` excluded, because it or one of its parent
    /// directories matches a pattern that no later pattern overrides?
    #[cfg(test)]
    fn matches_or_parent_matches(&self, path: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion == matched && (pattern.matches(path) || pattern.matches_a_parent(path)) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// `MatchesUsingParentResults`, what `archive.TarWithOptions` uses while walking: like
    /// `MatchesOrParentMatches`, but a pattern counts as matching a parent only if it was
    /// evaluated (and matched) when that parent was visited. This differs from it in corner
    /// cases (patterns `a`, `!a/b`, `a` keep `a/b/f`), and Docker sends what this says.
    ///
    /// With an empty `parent` (a top-level path, or no information) it checks the parents itself.
    pub fn matches_using_parent_results(&self, path: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let parent_matched = &parent.parent_matched;
        debug_assert!(parent_matched.is_empty() || parent_matched.len() == self.patterns.len());
        let mut info = MatchInfo { parent_matched: vec![false; self.patterns.len()] };
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent_matched.get(i).copied().unwrap_or(false);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path) || (parent_matched.is_empty() && pattern.matches_a_parent(path));
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }

    /// The package-level `patternmatcher.Matches` (deprecated upstream, yet what the CLI's
    /// `TrimBuildFilesFromExcludes` uses to decide whether to re-include the Dockerfile and
    /// `.dockerignore`): it checks one parent prefix, as long as the pattern.
    pub fn matches_legacy(&self, path: &str) -> bool {
        let path = go_clean(path);
        if path == "." {
            return false;
        }
        let parent = go_dir(&path);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(&path);
            if !hit && parent != "." && pattern.dirs <= parent_dirs.len() {
                hit = pattern.matches(&parent_dirs[..pattern.dirs].join("/"));
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    #[cfg(test)]
    fn kinds(&self) -> Vec<&MatchKind> {
        self.patterns.iter().map(|p| &p.kind).collect()
    }
}

impl Pattern {
    /// `Pattern.match`.
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchKind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            MatchKind::Regex(regex) => regex.is_match(path),
        }
    }

    /// The parent loop of `MatchesOrParentMatches`: does the pattern match `a`, `a/b`, ... of
    /// `path`'s parent directory `a/b/...`?
    fn matches_a_parent(&self, path: &str) -> bool {
        let parent = go_dir(path);
        let dirs: Vec<&str> = parent.split('/').collect();
        parent != "." && (1..=dirs.len()).any(|n| self.matches(&dirs[..n].join("/")))
    }
}

/// Go's `path.Clean` (`filepath.Clean` on a `/`-separated system).
pub fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir` on a `/`-separated system.
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => go_clean(&path[..=i]),
        None => ".".to_string(),
    }
}

/// The syntax check `patternmatcher.New` makes by calling `filepath.Match(pattern, ".")`:
/// a trailing `\` and malformed `[...]` classes are errors.
fn check_glob_syntax(pattern: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("syntax error in pattern ({why})"));
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    // Go's `getEsc`: one class character, possibly escaped, that must not end the pattern.
    let class_char = |i: &mut usize| -> Result<(), String> {
        match chars.get(*i) {
            None | Some('-') | Some(']') => return Err("syntax error in pattern (bad character class)".into()),
            Some('\\') => *i += 1,
            Some(_) => {}
        }
        if *i >= chars.len() {
            return Err("syntax error in pattern (bad character class)".into());
        }
        *i += 1;
        if *i >= chars.len() {
            return Err("syntax error in pattern (unclosed character class)".into());
        }
        Ok(())
    };
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return bad("trailing backslash");
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    class_char(&mut i)?;
                    if chars[i] == '-' {
                        i += 1;
                        class_char(&mut i)?;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// `Pattern.compile`: decides the match type and, for a regexp, translates the pattern into one.
fn compile(pattern: &str) -> Result<MatchKind, String> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut k = 0;
    while k < chars.len() {
        let first = k == 0;
        let ch = chars[k];
        k += 1;
        match ch {
            '*' if chars.get(k) == Some(&'*') => {
                k += 1;
                // `**/` is read as `**`.
                if chars.get(k) == Some(&'/') {
                    k += 1;
                }
                if k < chars.len() {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                } else if detected == Detected::Exact {
                    detected = Detected::Prefix;
                } else {
                    re.push_str(".*");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '\\' => {
                // A trailing backslash was refused by the syntax check.
                re += &literal(escaped_char(chars[k])?);
                k += 1;
                detected = Detected::Regex;
            }
            '[' => {
                re.push('[');
                if chars.get(k) == Some(&'^') {
                    re.push('^');
                    k += 1;
                }
                let mut empty = true;
                loop {
                    // The syntax check guarantees a closing `]`.
                    let c = chars[k];
                    k += 1;
                    if c == ']' && !empty {
                        break;
                    }
                    let lo = class_char(c, &chars, &mut k)?;
                    let hi = if chars.get(k) == Some(&'-') {
                        let c = chars[k + 1];
                        k += 2;
                        class_char(c, &chars, &mut k)?
                    } else {
                        lo
                    };
                    if lo > hi {
                        return Err(format!("the range `{lo}-{hi}` is reversed; write it as `{hi}-{lo}`"));
                    }
                    re += &literal(lo);
                    if hi != lo {
                        re.push('-');
                        re += &literal(hi);
                    }
                    empty = false;
                }
                re.push(']');
                detected = Detected::Regex;
            }
            ']' => {
                re += &literal(']');
                detected = Detected::Regex;
            }
            // Not escaped by moby: the start of the text in Go's regexp, and in `regex_lite`.
            '^' => re.push('^'),
            c => re += &literal(c),
        }
    }
    Ok(match detected {
        Detected::Exact => MatchKind::Exact,
        Detected::Prefix => MatchKind::Prefix,
        Detected::Suffix => MatchKind::Suffix,
        Detected::Regex => MatchKind::Regex(Regex::new(&(re + "$")).map_err(|e| e.to_string())?),
    })
}

/// The literal `c` in `regex_lite`'s syntax, inside or outside `[...]`.
fn literal(c: char) -> String {
    regex_lite::escape(c.encode_utf8(&mut [0; 4]))
}

/// `\c` becomes a regexp escape in Docker: the literal `c` for ASCII punctuation, something else
/// (`\d` a digit class, `\b` a word boundary, ...) or an error for letters, digits and non-ASCII.
fn escaped_char(c: char) -> Result<char, String> {
    if c.is_ascii() && !c.is_ascii_alphanumeric() {
        Ok(c)
    } else {
        Err(format!(
            "`\\{c}` is a regular-expression escape in Docker, not the literal `{c}`; write `{c}` without the backslash"
        ))
    }
}

/// One character of a `[...]` class, as Go's regexp reads what `compile` emits for it.
fn class_char(c: char, chars: &[char], k: &mut usize) -> Result<char, String> {
    match c {
        '\\' => {
            let escaped = escaped_char(chars[*k])?;
            *k += 1;
            Ok(escaped)
        }
        '*' | '?' => Err(format!(
            "Docker turns `{c}` inside `[...]` into a regular expression that is not a glob; write `\\{c}` for the character"
        )),
        '[' if chars.get(*k) == Some(&':') => {
            Err("Docker reads `[:name:]` inside `[...]` as a POSIX class, which this matcher does not support".into())
        }
        c => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(patterns: &[&str]) -> PatternMatcher {
        PatternMatcher::new(patterns).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `MatchesUsingParentResults` fed with the parents' results, the way the walker calls it.
    fn walk_matches(pm: &PatternMatcher, path: &str) -> bool {
        let parent = go_dir(path);
        let mut info = MatchInfo::default();
        if parent != "." {
            let dirs: Vec<&str> = parent.split('/').collect();
            for n in 1..=dirs.len() {
                info = pm.matches_using_parent_results(&dirs[..n].join("/"), &info).1;
            }
        }
        pm.matches_using_parent_results(path, &info).0
    }

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Expect {
        Fail,
        /// matches the path itself
        Exact,
        /// matches only through a parent directory
        Inexact,
    }
    use Expect::*;

    /// moby/patternmatcher's `TestMatches` table.
    const MOBY_MATCHES: &[(&str, &str, Expect)] = &[
        ("**", "file", Exact),
        ("**", "file/", Exact),
        ("**/", "file", Exact),
        ("**/", "file/", Exact),
        ("**", "/", Exact),
        ("**/", "/", Exact),
        ("**", "dir/file", Exact),
        ("**/", "dir/file", Exact),
        ("**", "dir/file/", Exact),
        ("**/", "dir/file/", Exact),
        ("**/**", "dir/file", Exact),
        ("**/**", "dir/file/", Exact),
        ("dir/**", "dir/file", Exact),
        ("dir/**", "dir/file/", Exact),
        ("dir/**", "dir/dir2/file", Exact),
        ("dir/**", "dir/dir2/file/", Exact),
        ("**/dir", "dir", Exact),
        ("**/dir", "dir/file", Inexact),
        ("**/dir2/*", "dir/dir2/file", Exact),
        ("**/dir2/*", "dir/dir2/file/", Inexact),
        ("**/dir2/**", "dir/dir2/dir3/file", Exact),
        ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
        ("**file", "file", Exact),
        ("**file", "dir/file", Exact),
        ("**/file", "dir/file", Exact),
        ("**file", "dir/dir/file", Exact),
        ("**/file", "dir/dir/file", Exact),
        ("**/file*", "dir/dir/file", Exact),
        ("**/file*", "dir/dir/file.txt", Exact),
        ("**/file*txt", "dir/dir/file.txt", Exact),
        ("**/file*.txt", "dir/dir/file.txt", Exact),
        ("**/file*.txt*", "dir/dir/file.txt", Exact),
        ("**/**/*.txt", "dir/dir/file.txt", Exact),
        ("**/**/*.txt2", "dir/dir/file.txt", Fail),
        ("**/*.txt", "file.txt", Exact),
        ("**/**/*.txt", "file.txt", Exact),
        ("a**/*.txt", "a/file.txt", Exact),
        ("a**/*.txt", "a/dir/file.txt", Exact),
        ("a**/*.txt", "a/dir/dir/file.txt", Exact),
        ("a/*.txt", "a/dir/file.txt", Fail),
        ("a/*.txt", "a/file.txt", Exact),
        ("a/*.txt**", "a/file.txt", Exact),
        ("a[b-d]e", "ae", Fail),
        ("a[b-d]e", "ace", Exact),
        ("a[b-d]e", "aae", Fail),
        ("a[^b-d]e", "aze", Exact),
        (".*", ".foo", Exact),
        (".*", "foo", Fail),
        ("abc.def", "abcdef", Fail),
        ("abc.def", "abc.def", Exact),
        ("abc.def", "abcZdef", Fail),
        ("abc?def", "abcZdef", Exact),
        ("abc?def", "abcdef", Fail),
        ("**/foo/bar", "foo/bar", Exact),
        ("**/foo/bar", "dir/foo/bar", Exact),
        ("**/foo/bar", "dir/dir2/foo/bar", Exact),
        ("abc/**", "abc", Fail),
        ("abc/**", "abc/def", Exact),
        ("abc/**", "abc/def/ghi", Exact),
        ("**/.foo", ".foo", Exact),
        ("**/.foo", "bar.foo", Fail),
        ("a(b)c/def", "a(b)c/def", Exact),
        ("a(b)c/def", "a(b)c/xyz", Fail),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            Exact,
        ),
        ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", Exact),
        ("a\\\\", "a\\", Exact),
        ("a\\*b", "a*b", Exact),
    ];

    /// moby/patternmatcher's multi-pattern table.
    const MOBY_MULTI: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (&["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", true),
        (
            &["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        (&["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", false),
    ];

    #[test]
    fn moby_match_table() {
        for &(pattern, path, expect) in MOBY_MATCHES {
            let pm = matcher(&[pattern]);
            let what = format!("pattern {pattern:?}, path {path:?}");
            assert_eq!(pm.matches_exact(path), expect == Exact, "matches_exact: {what}");
            assert_eq!(pm.matches_or_parent_matches(path), expect != Fail, "matches_or_parent_matches: {what}");
            assert_eq!(walk_matches(&pm, path), expect != Fail, "matches_using_parent_results: {what}");
            let (no_context, _) = pm.matches_using_parent_results(path, &MatchInfo::default());
            assert_eq!(no_context, expect != Fail, "matches_using_parent_results without context: {what}");
        }
    }

    #[test]
    fn moby_multi_pattern_table() {
        for &(patterns, path, expect) in MOBY_MULTI {
            let pm = matcher(patterns);
            let what = format!("patterns {patterns:?}, path {path:?}");
            assert_eq!(pm.matches_or_parent_matches(path), expect, "matches_or_parent_matches: {what}");
            assert_eq!(walk_matches(&pm, path), expect, "matches_using_parent_results: {what}");
        }
    }

    /// moby/patternmatcher's `matchTests` (Go's `filepath.Match` tests) through the
    /// package-level `Matches`; `None` is a pattern error.
    #[test]
    fn go_filepath_match_table() {
        let table: &[(&str, &str, Option<bool>)] = &[
            ("abc", "abc", Some(true)),
            ("*", "abc", Some(true)),
            ("*c", "abc", Some(true)),
            ("a*", "a", Some(true)),
            ("a*", "abc", Some(true)),
            ("a*", "ab/c", Some(true)),
            ("a*/b", "abc/b", Some(true)),
            ("a*/b", "a/c/b", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
            ("ab[c]", "abc", Some(true)),
            ("ab[b-d]", "abc", Some(true)),
            ("ab[e-g]", "abc", Some(false)),
            ("ab[^c]", "abc", Some(false)),
            ("ab[^b-d]", "abc", Some(false)),
            ("ab[^e-g]", "abc", Some(true)),
            ("a\\*b", "a*b", Some(true)),
            ("a\\*b", "ab", Some(false)),
            ("a?b", "a☺b", Some(true)),
            ("a[^a]b", "a☺b", Some(true)),
            ("a???b", "a☺b", Some(false)),
            ("a[^a][^a][^a]b", "a☺b", Some(false)),
            ("[a-ζ]*", "α", Some(true)),
            ("*[a-ζ]", "A", Some(false)),
            ("a?b", "a/b", Some(false)),
            ("a*b", "a/b", Some(false)),
            ("[\\]a]", "]", Some(true)),
            ("[\\-]", "-", Some(true)),
            ("[x\\-]", "x", Some(true)),
            ("[x\\-]", "-", Some(true)),
            ("[x\\-]", "z", Some(false)),
            ("[\\-x]", "x", Some(true)),
            ("[\\-x]", "-", Some(true)),
            ("[\\-x]", "a", Some(false)),
            ("[]a]", "]", None),
            ("[-]", "-", None),
            ("[x-]", "x", None),
            ("[x-]", "-", None),
            ("[x-]", "z", None),
            ("[-x]", "x", None),
            ("[-x]", "-", None),
            ("[-x]", "a", None),
            ("\\", "a", None),
            ("[a-b-c]", "a", None),
            ("[", "a", None),
            ("[^", "a", None),
            ("[^bc", "a", None),
            ("a[", "a", None),
            ("a[", "ab", None),
            ("*x", "xxx", Some(true)),
        ];
        for &(pattern, path, expect) in table {
            let got = PatternMatcher::new(&[pattern]).map(|pm| pm.matches_legacy(path)).ok();
            assert_eq!(got, expect, "pattern {pattern:?}, path {path:?}");
        }
    }

    /// moby/patternmatcher's `TestCompile`: which patterns take the fast paths.
    #[test]
    fn compile_picks_moby_match_kind() {
        let cases: &[(&str, &str)] = &[
            ("*", "regex"),
            ("file*", "regex"),
            ("**", "suffix"),
            ("**/**", "regex"),
            ("dir/**", "prefix"),
            ("**/dir", "suffix"),
            ("**/dir2/*", "regex"),
            ("**file", "suffix"),
            ("a[b-d]e", "regex"),
            (".*", "regex"),
            ("abc.def", "exact"),
            ("abc?def", "regex"),
            ("**/foo/bar", "suffix"),
            ("a(b)c/def", "exact"),
            ("a.|)$(}+{bc", "exact"),
        ];
        for &(pattern, want) in cases {
            let pm = matcher(&[pattern]);
            let got = match pm.kinds()[0] {
                MatchKind::Exact => "exact",
                MatchKind::Prefix => "prefix",
                MatchKind::Suffix => "suffix",
                MatchKind::Regex(_) => "regex",
            };
            assert_eq!(got, want, "pattern {pattern:?}");
        }
    }

    #[test]
    fn suffix_fast_path_keeps_mobys_quirk() {
        // `**foo` is a plain suffix test upstream, so it also matches `xfoo` (a regexp would not).
        let pm = matcher(&["**foo"]);
        assert!(pm.matches_or_parent_matches("xfoo"));
        assert!(pm.matches_or_parent_matches("dir/xfoo"));
        assert!(!pm.matches_or_parent_matches("foox"));
    }

    #[test]
    fn last_matching_pattern_wins() {
        let pm = matcher(&["*.md", "!README.md", "README*"]);
        assert!(pm.matches_or_parent_matches("README.md"));
        assert!(pm.matches_or_parent_matches("CHANGES.md"));
        let pm = matcher(&["README*", "*.md", "!README.md"]);
        assert!(!pm.matches_or_parent_matches("README.md"));
        assert!(pm.matches_or_parent_matches("README.txt"));
    }

    #[test]
    fn directory_patterns_exclude_everything_below() {
        for pattern in ["build", "build/", "/build", "./build", "build/."] {
            // The leading `/` is removed when the file is read, not by the matcher.
            let lines = read_dockerignore(pattern.as_bytes()).unwrap();
            let pm = matcher(&[lines[0].pattern.as_str()]);
            assert!(pm.matches_or_parent_matches("build"), "{pattern}");
            assert!(pm.matches_or_parent_matches("build/a/b.o"), "{pattern}");
            assert!(!pm.matches_or_parent_matches("src/build"), "{pattern} is anchored at the root");
            assert!(!pm.matches_or_parent_matches("builder"), "{pattern}");
        }
        let pm = matcher(&["*/build"]);
        assert!(pm.matches_or_parent_matches("src/build/x"));
        assert!(!pm.matches_or_parent_matches("build/x"));
        assert!(!pm.matches_or_parent_matches("a/src/build"));
    }

    #[test]
    fn using_parent_results_differs_from_or_parent_matches_like_moby() {
        // `a` excludes `a`; `!a/b` re-includes `a/b`; the second `a` is not evaluated for the
        // directory `a` (it is already excluded), so the walk never credits it to `a/b/f`.
        let pm = matcher(&["a", "!a/b", "a"]);
        assert!(pm.matches_or_parent_matches("a/b/f"));
        assert!(!walk_matches(&pm, "a/b/f"));
        assert!(walk_matches(&pm, "a/c"));
    }

    #[test]
    fn exception_below_an_excluded_directory_is_textual() {
        let pm = matcher(&["vendor", "!vendor/keep/**", "!**/x"]);
        assert!(pm.has_exclusions());
        assert!(pm.exception_may_match_below("vendor"));
        assert!(pm.exception_may_match_below("vendor/keep"));
        assert!(!pm.exception_may_match_below("vendor/other"));
        assert!(!pm.exception_may_match_below("ven"));
        assert!(!matcher(&["vendor"]).has_exclusions());
    }

    #[test]
    fn classes_and_escapes() {
        let pm = matcher(&["file[a-c].txt"]);
        assert!(pm.matches_exact("fileb.txt"));
        assert!(!pm.matches_exact("filed.txt"));
        // `!` is not a negation in Docker (Go's regexp); `^` is.
        let pm = matcher(&["x[!a]"]);
        assert!(pm.matches_exact("x!") && pm.matches_exact("xa") && !pm.matches_exact("xb"));
        let pm = matcher(&["x[^a]"]);
        assert!(pm.matches_exact("xb") && !pm.matches_exact("xa"));
        let pm = matcher(&["\\[draft\\]*"]);
        assert!(pm.matches_exact("[draft] notes"));
        assert!(!pm.matches_exact("d"));
        let pm = matcher(&["what\\?"]);
        assert!(pm.matches_exact("what?") && !pm.matches_exact("whats"));
    }

    #[test]
    fn unescaped_caret_is_an_anchor_in_regex_patterns_only() {
        // Exact match compares the text; a regexp reads `^` as the start of the text.
        assert!(matcher(&["^foo"]).matches_exact("^foo"));
        let pm = matcher(&["^foo*"]);
        assert!(pm.matches_exact("foobar"));
        assert!(!pm.matches_exact("^foobar"));
        assert!(!matcher(&["a^b*"]).matches_exact("a^b"));
    }

    #[test]
    fn patterns_docker_refuses_or_reads_as_regexps_are_errors() {
        for bad in ["!", "[", "a[", "[z-a]", "x\\", "\\d", "[*]", "[[:alpha:]]", "a\\é"] {
            assert!(PatternMatcher::new(&[bad]).is_err(), "{bad:?} should be refused");
        }
        let error = PatternMatcher::new(&["ok", "also-ok", "[z-a]"]).unwrap_err();
        assert_eq!(error.index, 2);
        assert!(error.to_string().contains("reversed"), "{error}");
    }

    #[test]
    fn read_dockerignore_like_the_cli() {
        // moby/patternmatcher's ignorefile test, plus a BOM, CRLF and an indented `#`.
        let content = "\u{feff}test1\r\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n  # not a comment\n./x/../y/\n";
        let lines = read_dockerignore(content.as_bytes()).unwrap();
        let patterns: Vec<&str> = lines.iter().map(|l| l.pattern.as_str()).collect();
        assert_eq!(
            patterns,
            ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!", "# not a comment", "y"]
        );
        assert_eq!(lines.iter().map(|l| l.line).collect::<Vec<_>>(), [1, 2, 3, 5, 7, 8, 9, 10, 11]);
        assert_eq!(read_dockerignore(b"ok\n\xff\n"), Err(2));
        assert_eq!(read_dockerignore(b"# \xff\n"), Ok(vec![]));
        assert_eq!(read_dockerignore(b""), Ok(vec![]));
    }

    #[test]
    fn go_clean_and_dir() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("a//b/./c/..", "a/b"),
            ("!./x", "!./x"),
            ("!/", "!"),
        ] {
            assert_eq!(go_clean(input), want, "clean {input:?}");
        }
        assert_eq!(go_dir("a/b/c"), "a/b");
        assert_eq!(go_dir("file"), ".");
        assert_eq!(go_dir("file/"), "file");
        assert_eq!(go_dir("/"), "/");
    }
}
