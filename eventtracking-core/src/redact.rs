//! The one secret policy: what counts as a secret, and the one [`Redactor`]
//! that removes secrets from `Debug` output, errors and log lines.
//!
//! Config entries hold credentials: passwords inside URIs
//! (`mongodb://user:secret@host`), credential-bearing URI parameters
//! (`tlsCertificateKeyFilePassword=…`, `authMechanismProperties=AWS_SESSION_TOKEN:…`)
//! and keys such as `sasl.password`. Core, the Kafka backend and the
//! MongoDB backend all decide with [`is_secret_key`] and redact with
//! [`Redactor`]; nothing else in the workspace judges secrets.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Words that make a key secret, compared with the key in lower case and
/// without `.`, `_` and `-` (so `private_key`, `private.key` and
/// `privateKey` are one word).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "privatekey",
    "apikey",
    // The HTTP collector's `write_keys` (and an `X-Eventtracking-Key`-like name).
    "writekey",
    // librdkafka: `ssl.key.pem`, `ssl.key.password`, `ssl.key.location`.
    "sslkey",
    // librdkafka: may hold a client secret or a password.
    "sasloauthbearerconfig",
    "sasljaasconfig",
    // MongoDB: `AWS_SESSION_TOKEN:…` and other mechanism secrets.
    "authmechanismproperties",
];

/// Whether a key names a secret: a config key, a librdkafka property, a URI
/// query parameter or an environment variable. The rule, in any case and
/// with `.`, `_`, `-` ignored: the key contains `password`, `passwd`, `pwd`,
/// `passphrase`, `secret`, `token`, `credential`, `private key`, `api key`,
/// `write key` (the collector's `write_keys`), or is key material or a mechanism config (`ssl.key.*`,
/// `sasl.oauthbearer.config`, `sasl.jaas.config`,
/// `authMechanismProperties`).
///
/// ```
/// use eventtracking_core::redact::is_secret_key;
/// for key in [
///     "sasl.password", "sasl.passwd", "ssl.key.pem", "ssl.key.password",
///     "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config",
///     "AWS_SESSION_TOKEN", "tlsCertificateKeyFilePassword",
///     "authMechanismProperties", "private_key", "credentials", "write_keys",
/// ] {
///     assert!(is_secret_key(key), "{key}");
/// }
/// for key in ["brokers", "topic", "key", "uri", "ssl.ca.location", "authSource"] {
///     assert!(!is_secret_key(key), "{key}");
/// }
/// ```
pub fn is_secret_key(key: &str) -> bool {
    let folded: String = key
        .chars()
        .filter(|c| !matches!(c, '.' | '_' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_WORDS.iter().any(|word| folded.contains(word))
}

/// Removes secrets from text: the secret values it was given (longest
/// first), every `scheme://user:password@` password, and the value of every
/// `key=value`, `key: value` or `key = "value"` whose key looks secret (see
/// [`is_secret_key`]), which covers URI query parameters and config lines.
/// Cheap to clone; its `Debug` shows only how many secrets it knows.
///
/// ```
/// use eventtracking_core::redact::Redactor;
/// let redactor = Redactor::new()
///     .with_uri("mongodb://app:p%40ss@db/?tlsCertificateKeyFilePassword=k3y&appName=x")
///     .with_secret("hunter2");
/// assert_eq!(
///     redactor.redact("cannot reach mongodb://app:p%40ss@db/ (p@ss, k3y, hunter2)"),
///     "cannot reach mongodb://app:[REDACTED]@db/ ([REDACTED], [REDACTED], [REDACTED])"
/// );
/// assert_eq!(
///     Redactor::new().redact("?authMechanismProperties=AWS_SESSION_TOKEN:abc&appName=x"),
///     "?authMechanismProperties=[REDACTED]&appName=x"
/// );
/// assert_eq!(Redactor::new().redact("nothing here"), "nothing here");
/// assert!(!format!("{redactor:?}").contains("hunter2"));
/// ```
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Arc<[String]>,
}

impl Redactor {
    /// A redactor that knows no secret values yet (it still applies the
    /// key and URI rules).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret value (ignored when empty).
    pub fn with_secret(self, secret: impl Into<String>) -> Self {
        self.with_secrets([secret.into()])
    }

    /// Adds the values whose keys look secret, e.g. librdkafka properties.
    pub fn with_secret_values<'a>(
        self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let values: Vec<String> = pairs
            .into_iter()
            .filter(|(key, _)| is_secret_key(key))
            .map(|(_, value)| value.to_owned())
            .collect();
        self.with_secrets(values)
    }

    /// Adds the secrets of a URI: the userinfo password and the values of
    /// query parameters whose names look secret (and, inside a
    /// `KEY:value,…` list such as `authMechanismProperties`, each value),
    /// both as written and percent-decoded.
    pub fn with_uri(self, uri: &str) -> Self {
        let mut found = Vec::new();
        if let Some(password) = uri_password(uri) {
            found.push(password.to_owned());
        }
        let query = uri.split_once('?').map_or("", |(_, query)| query);
        for pair in query.split(['&', ';']) {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            if !is_secret_key(key) {
                continue;
            }
            found.push(value.to_owned());
            let decoded = percent_decode(value);
            for item in decoded.split(',') {
                if let Some((_, inner)) = item.split_once(':') {
                    found.push(inner.to_owned());
                }
            }
            found.push(decoded);
        }
        let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
        found.extend(decoded);
        self.with_secrets(found)
    }

    fn with_secrets(self, more: impl IntoIterator<Item = String>) -> Self {
        let mut secrets = self.secrets.to_vec();
        secrets.extend(more);
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor {
            secrets: Arc::from(secrets),
        }
    }

    /// `text` with every secret replaced by [`REDACTED`] (borrowed when it
    /// holds none).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), REDACTED));
            }
        }
        if let Cow::Owned(redacted) = redact_uri_passwords(&text) {
            text = Cow::Owned(redacted);
        }
        if let Cow::Owned(redacted) = redact_secret_assignments(&text) {
            text = Cow::Owned(redacted);
        }
        text
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// Hides the password of every `scheme://user:password@host` in `text`: a
/// scheme (a letter, then letters, digits, `+`, `.`, `-`), `://`, a user
/// (no `:`, `/`, `@` or whitespace), `:`, then the password up to the first
/// `@` (no whitespace in between).
fn redact_uri_passwords(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let separator = search + found;
        search = separator + 3;
        let scheme_start = bytes[..separator]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')))
            .map_or(0, |at| at + 1);
        if !bytes[scheme_start..separator]
            .iter()
            .any(u8::is_ascii_alphabetic)
        {
            continue;
        }
        let after = &text[search..];
        let Some(user_len) =
            after.find(|c: char| matches!(c, ':' | '/' | '@') || c.is_whitespace())
        else {
            continue;
        };
        if !after[user_len..].starts_with(':') {
            continue;
        }
        let password_start = search + user_len + 1;
        let Some(password_len) =
            text[password_start..].find(|c: char| c == '@' || c.is_whitespace())
        else {
            continue;
        };
        let password_end = password_start + password_len;
        if bytes[password_end] != b'@' {
            continue;
        }
        out.push_str(&text[copied..password_start]);
        out.push_str(REDACTED);
        copied = password_end;
        search = password_end + 1;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Hides the value of `key=value`, `key: value` and `"key" = "value"` when
/// the key looks secret: URI parameters, TOML lines, messages quoting either.
/// Only the key and separator are matched, so a non-secret assignment
/// (`uri: mongodb://…?password=…`) never hides a secret one inside its value.
fn redact_secret_assignments(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some((key, value_start)) = next_assignment(text, from) {
        from = value_start;
        if !is_secret_key(key) {
            continue;
        }
        let value_end = from + value_len(&text[from..]);
        let value = &text[from..value_end];
        if !value.is_empty() && value != REDACTED {
            out.push_str(&text[copied..from]);
            out.push_str(REDACTED);
            copied = value_end;
        }
        from = value_end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The next `key` followed by an optional closing quote, blanks, `=` or
/// `:` and blanks, at or after `from`: the key and where its value starts.
fn next_assignment(text: &str, mut from: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    let is_key_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    let is_blank = |b: u8| matches!(b, b' ' | b'\t');
    while from < bytes.len() {
        let start = from + bytes[from..].iter().position(|&b| is_key_byte(b))?;
        let end = start
            + bytes[start..]
                .iter()
                .position(|&b| !is_key_byte(b))
                .unwrap_or(bytes.len() - start);
        let mut at = end;
        if at < bytes.len() && matches!(bytes[at], b'"' | b'\'') {
            at += 1;
        }
        while at < bytes.len() && is_blank(bytes[at]) {
            at += 1;
        }
        if at < bytes.len() && matches!(bytes[at], b'=' | b':') {
            at += 1;
            while at < bytes.len() && is_blank(bytes[at]) {
                at += 1;
            }
            return Some((&text[start..end], at));
        }
        from = end;
    }
    None
}

/// The length of the value at the start of `text`: a TOML string (up to its
/// closing quote, the end of the line for a one-line string, or the end of
/// the text for an unterminated multi-line one) or a bare word.
fn value_len(text: &str) -> usize {
    for delimiter in ["\"\"\"", "'''"] {
        if let Some(rest) = text.strip_prefix(delimiter) {
            return rest
                .find(delimiter)
                .map_or(text.len(), |end| end + 2 * delimiter.len());
        }
    }
    let mut chars = text.char_indices();
    match chars.next() {
        Some((_, quote @ ('"' | '\''))) => {
            let mut escaped = false;
            for (at, c) in chars {
                if c == '\n' {
                    return at;
                }
                if c == quote && !escaped {
                    return at + 1;
                }
                escaped = quote == '"' && c == '\\' && !escaped;
            }
            text.len()
        }
        _ => text
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | '&' | ';' | ')'))
            .unwrap_or(text.len()),
    }
}

/// A copy of a JSON value with the values of secret keys hidden, and
/// those values hidden wherever else they appear too (as in `acks =
/// "<the password>"`), with URI secrets.
pub fn redact_value(value: &Value) -> Value {
    let mut secrets = Vec::new();
    collect_secret_values(value, false, &mut secrets);
    redact_value_with(value, &Redactor::new().with_secrets(secrets))
}

/// The string leaves under secret keys.
fn collect_secret_values(value: &Value, secret: bool, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                collect_secret_values(value, secret || is_secret_key(key), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_secret_values(item, secret, out);
            }
        }
        Value::String(text) if secret => out.push(text.clone()),
        _ => {}
    }
}

fn redact_value_with(value: &Value, redactor: &Redactor) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if is_secret_key(key) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact_value_with(value, redactor)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| redact_value_with(item, redactor))
                .collect(),
        ),
        Value::String(text) => Value::String(redactor.redact(text).into_owned()),
        other => other.clone(),
    }
}

/// The password part of `scheme://user:password@hosts...`, as written.
fn uri_password(uri: &str) -> Option<&str> {
    let rest = &uri[uri.find("://")? + 3..];
    // The authority ends at the first '/' or '?'; a password may hold an
    // unencoded '@' (which drivers refuse, but it must not leak through the
    // refusal either), so the last '@' before that end separates it.
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_user, password) = userinfo.split_once(':')?;
    Some(password)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_secret_key_rule_is_the_union_of_the_old_rules_and_more() {
        // Core's old rule, Kafka's old rule, and the additions.
        for key in [
            "password",
            "sasl.password",
            "secret",
            "token",
            "access_token",
            "credential",
            "credentials",
            "private_key",
            "private.key",
            "ssl.key.pem",
            "ssl.key.password",
            "ssl.key.location",
            "ssl.keystore.password",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.jaas.config",
            "sasl.passwd",
            "SASL.PASSWORD",
            "db_pwd",
            "AWS_SESSION_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "tlsCertificateKeyFilePassword",
            "authMechanismProperties",
            "api-key",
            "passphrase",
        ] {
            assert!(is_secret_key(key), "{key} should be secret");
        }
        for key in [
            "brokers",
            "topic",
            "key",
            "uri",
            "path",
            "acks",
            "ssl.ca.location",
            "authSource",
            "authMechanism",
            "sasl.username",
            "sasl.mechanisms",
        ] {
            assert!(!is_secret_key(key), "{key} should not be secret");
        }
    }

    #[test]
    fn values_lose_their_secrets() {
        let value = json!({
            "uri": "mongodb://u:p4ss@h/db?tlsCertificateKeyFilePassword=tlsk3y",
            "properties": {"sasl.password": "hunter2", "ssl.key.pem": "PEMDATA", "acks": "all"},
            "list": ["kafka://a:b@c"]
        });
        let text = redact_value(&value).to_string();
        for secret in ["p4ss", "hunter2", ":b@", "tlsk3y", "PEMDATA"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("\"acks\":\"all\""));
    }

    #[test]
    fn uri_secrets_are_found_as_written_and_decoded() {
        assert_eq!(uri_password("mongodb://u:p@h/"), Some("p"));
        assert_eq!(uri_password("mongodb://u:p@ss@h/"), Some("p@ss"));
        assert_eq!(uri_password("mongodb://u@h/"), None);
        assert_eq!(uri_password("mongodb://h:27017/"), None);
        assert_eq!(uri_password("mongodb://h/?x=a@b"), None);
        assert_eq!(uri_password("no uri"), None);
        assert_eq!(percent_decode("a%40b%2Fc%zz%4"), "a@b/c%zz%4");
        let redactor = Redactor::new().with_uri(
            "mongodb://u:a%3Ab@h/?authMechanismProperties=AWS_SESSION_TOKEN%3As3ss10n,SERVICE_NAME:svc&appName=app",
        );
        let text = redactor.redact("x a:b y a%3Ab z s3ss10n w");
        assert_eq!(text, "x [REDACTED] y [REDACTED] z [REDACTED] w");
        assert_eq!(redactor.redact("app"), "app");
    }

    #[test]
    fn assignments_in_error_text_lose_their_secrets() {
        let redactor = Redactor::new();
        let text = "TOML parse error at line 3\n  |\n3 | sasl.password = \"hunter2\n  |       ^";
        let redacted = redactor.redact(text);
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("sasl.password"), "{redacted}");
        let quoted = redactor.redact(r#""sasl.passwd" = "hunter2""#);
        assert!(!quoted.contains("hunter2"), "{quoted}");
        let multiline = redactor.redact("token = \"\"\"line one\nline two");
        assert!(!multiline.contains("line two"), "{multiline}");
        assert_eq!(redactor.redact("brokers = \"a:1\""), "brokers = \"a:1\"");
        assert_eq!(
            redactor.redact("mongodb://h/?tlsCertificateKeyFilePassword=k3y&appName=a"),
            "mongodb://h/?tlsCertificateKeyFilePassword=[REDACTED]&appName=a"
        );
        // Redacting twice changes nothing more.
        let once = redactor.redact("password = \"x\"").into_owned();
        assert_eq!(redactor.redact(&once), once);
    }
}
