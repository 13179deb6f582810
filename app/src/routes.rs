//! The service's routes: `/`, `/healthz`, `/version`.

use crate::http::{Request, Response};

/// What `/version` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The commit the image was built from (`APP_COMMIT`, set in the Dockerfile).
    pub commit: Option<String>,
    /// The tag the image was deployed as (`APP_IMAGE_TAG`, set by the task definition).
    /// An image is reused for a later commit when none of its inputs changed, so this
    /// can name a descendant of `commit`; both are true.
    pub image_tag: Option<String>,
    pub version: &'static str,
}

const ALLOW: &str = "GET, HEAD";

/// Answers a request: unknown paths get 404 whatever the method; known paths get
/// 405 (with `Allow`) for methods other than GET and HEAD.
pub fn handle(info: &Info, request: &Request) -> Response {
    let route: fn(&Info) -> Response = match request.path.as_str() {
        "/" => index,
        "/healthz" => healthz,
        "/version" => version,
        _ => return Response::text(404, "Not Found\n"),
    };
    match request.method.as_str() {
        "GET" | "HEAD" => route(info).with_header("Cache-Control", "no-store"),
        _ => Response::text(405, "Method Not Allowed\n").with_header("Allow", ALLOW),
    }
}

fn index(info: &Info) -> Response {
    Response::text(200, &format!("app {}: the hello service. Endpoints: /healthz, /version\n", info.version))
}

fn healthz(_: &Info) -> Response {
    Response::text(200, "ok")
}

fn version(info: &Info) -> Response {
    Response::json(200, version_json(info))
}

/// `{"commit":…,"image_tag":…,"version":…}`, absent values as `null`.
pub fn version_json(info: &Info) -> String {
    let mut out = String::from("{\"commit\":");
    json_value(&mut out, info.commit.as_deref());
    out.push_str(",\"image_tag\":");
    json_value(&mut out, info.image_tag.as_deref());
    out.push_str(",\"version\":");
    json_value(&mut out, Some(info.version));
    out.push('}');
    out
}

fn json_value(out: &mut String, value: Option<&str>) {
    match value {
        Some(s) => json_string(out, s),
        None => out.push_str("null"),
    }
}

/// Appends `s` as a JSON string literal (RFC 8259): quotes, backslashes and control
/// characters escaped; everything else, non-ASCII included, as is (UTF-8).
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c < '\u{20}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        json_string(&mut out, s);
        out
    }

    #[test]
    fn escapes_json_strings() {
        assert_eq!(escaped(""), r#""""#);
        assert_eq!(escaped("abc123"), r#""abc123""#);
        assert_eq!(escaped(r#"a"b\c/d"#), r#""a\"b\\c/d""#);
        assert_eq!(escaped("l1\nl2\r\tx"), r#""l1\nl2\r\tx""#);
        assert_eq!(escaped("\u{08}\u{0c}"), r#""\b\f""#);
        assert_eq!(escaped("\u{00}\u{01}\u{1f}"), r#""\u0000\u0001\u001f""#);
        assert_eq!(escaped("\u{7f} é ✓ 😀"), "\"\u{7f} é ✓ 😀\"");
    }

    #[test]
    fn version_json_has_all_three_fields() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let info = Info { commit: Some(sha.into()), image_tag: None, version: "1.2.3" };
        assert_eq!(version_json(&info), format!(r#"{{"commit":"{sha}","image_tag":null,"version":"1.2.3"}}"#));
        let odd = Info { commit: None, image_tag: Some("t\"1\n".into()), version: "0.1.0" };
        assert_eq!(version_json(&odd), r#"{"commit":null,"image_tag":"t\"1\n","version":"0.1.0"}"#);
    }
}
