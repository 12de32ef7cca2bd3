//! Keeping secrets out of `Debug` output and error messages.
//!
//! Config entries hold credentials: passwords inside URIs
//! (`mongodb://user:secret@host`) and keys such as `sasl.password`. These
//! helpers replace them with [`REDACTED`] wherever core prints config, and
//! backends use them for their own messages.

use std::sync::LazyLock;

use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Whether an option key names a secret (`password`, `secret`, `token`,
/// `credential`, `private_key`, in any case or position).
///
/// ```
/// use eventtracking_core::redact::is_secret_key;
/// assert!(is_secret_key("sasl.password"));
/// assert!(is_secret_key("sasl.oauthbearer.client.secret"));
/// assert!(!is_secret_key("brokers"));
/// ```
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "private_key",
        "private.key",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Hides the password of every `scheme://user:password@host` in `text`.
///
/// ```
/// use eventtracking_core::redact::redact_uri_passwords;
/// assert_eq!(
///     redact_uri_passwords("cannot reach mongodb://app:s3cret@db:27017/x"),
///     "cannot reach mongodb://app:[REDACTED]@db:27017/x"
/// );
/// ```
pub fn redact_uri_passwords(text: &str) -> String {
    static USERINFO: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@").ok()
    });
    match &*USERINFO {
        Some(pattern) => pattern
            .replace_all(text, format!("${{head}}{REDACTED}@"))
            .into_owned(),
        None => text.to_owned(),
    }
}

/// Hides `key = "value"` / `key: value` assignments whose key names a secret,
/// as TOML parse errors quote the offending line.
pub fn redact_secret_assignments(text: &str) -> String {
    static ASSIGNMENT: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)(?P<key>[\w.-]*(password|secret|token|credential|private[_.]key)[\w.-]*"?\s*[=:]\s*)("[^"\n]*"?|'[^'\n]*'?|[^\s,}\n]+)"#,
        )
        .ok()
    });
    let text = redact_uri_passwords(text);
    match &*ASSIGNMENT {
        Some(pattern) => pattern
            .replace_all(&text, format!("${{key}}\"{REDACTED}\""))
            .into_owned(),
        None => text,
    }
}

/// A copy of a JSON value with secret keys and URI passwords hidden.
pub fn redact_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if is_secret_key(key) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact_value(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        Value::String(text) => Value::String(redact_uri_passwords(text)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_lose_their_secrets() {
        let value = json!({
            "uri": "mongodb://u:p4ss@h/db",
            "properties": {"sasl.password": "hunter2", "acks": "all"},
            "list": ["kafka://a:b@c"]
        });
        let text = redact_value(&value).to_string();
        for secret in ["p4ss", "hunter2", ":b@"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("\"acks\":\"all\""));
    }

    #[test]
    fn assignments_in_error_text_lose_their_secrets() {
        let text = "TOML parse error at line 3\n  |\n3 | sasl.password = \"hunter2\n  |       ^";
        let redacted = redact_secret_assignments(text);
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("sasl.password"), "{redacted}");
        assert_eq!(
            redact_secret_assignments("brokers = \"a:1\""),
            "brokers = \"a:1\""
        );
    }
}
