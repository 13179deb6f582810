//! Text from outside (registries, labels, ECR, flags) cut for display, by characters:
//! slicing a string by byte index panics when the cut falls inside a character.

/// The first `chars` characters of `text` (all of it when shorter).
pub fn prefix(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// A digest or id for display: `sha256:` and twelve hex digits (19 characters).
pub fn short_digest(digest: &str) -> &str {
    prefix(digest, 19)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_cut_between_characters() {
        assert_eq!(prefix("sha256:0123456789abcdef", 19), "sha256:0123456789ab");
        assert_eq!(prefix("short", 19), "short");
        assert_eq!(prefix("", 3), "");
        // A byte slice `[..19]` of these panics: byte 19 is inside a character.
        let label = "sha256:ééééééééééé";
        assert_eq!(short_digest(label), label);
        assert_eq!(prefix("日本語のラベル", 2), "日本");
        assert_eq!(prefix("🦀🦀🦀", 1), "🦀");
    }
}
