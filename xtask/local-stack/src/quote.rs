//! Paths and values written into what another program reads (a shell, the AWS config's
//! `credential_process`, the registry's YAML): quoted for that reader, or refused with an
//! error that says which path to change.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// `value` as one word of a POSIX shell command line: in single quotes, each `'` as `'\''`,
/// so that no character (`$`, `"`, a space, a backquote) means anything to the shell.
/// Python's `shlex.split` (how the AWS CLI reads `credential_process`) reads it alike.
pub fn shell(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `value` as a YAML scalar: single-quoted, each `'` doubled; nothing in it (`: `, ` #`,
/// a leading `&` or `*`) is then YAML syntax. A line break or another control character
/// would be folded or refused by the reader: it is refused here.
pub fn yaml(value: &str) -> Result<String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!(
            "`{}` holds the control character {c:?}, which a YAML file cannot carry as written",
            value.escape_debug()
        );
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// `path` as text, for a file another program reads; `what` names it in the error.
pub fn text<'a>(path: &'a Path, what: &str) -> Result<&'a str> {
    path.to_str().with_context(|| {
        format!(
            "{what} {} is not UTF-8 text, which the files that name it must be; use a path of UTF-8 text",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_word_comes_back_whole_through_sh() {
        let sh = xshell::Shell::new().unwrap();
        let value = r#"/a b'c"d$HOME`e`\f; g #h"#;
        let script = format!("printf '%s' {}", shell(value));
        assert_eq!(xshell::cmd!(sh, "sh -c {script}").read().unwrap(), value);
    }

    #[test]
    fn a_yaml_scalar_is_single_quoted_and_a_line_break_refused() {
        assert_eq!(yaml("/a b: 'c' #d").unwrap(), "'/a b: ''c'' #d'");
        let err = yaml("/a\nb").unwrap_err().to_string();
        assert!(err.contains("control character '\\n'"), "{err}");
    }
}
