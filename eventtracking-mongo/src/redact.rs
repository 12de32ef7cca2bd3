//! Keeping the URI's password out of everything this crate prints.

use std::fmt;
use std::sync::Arc;

use eventtracking_core::redact::{redact_uri_passwords, REDACTED};

/// Replaces the password of a MongoDB URI wherever it appears in text: in
/// `scheme://user:password@` form, and the password alone (as written in
/// the URI and percent-decoded), as driver messages might quote either.
/// Cheap to clone.
///
/// ```
/// use eventtracking_mongo::Redactor;
/// let redactor = Redactor::for_uri("mongodb://app:p%40ss-w0rd@db:27017/");
/// assert_eq!(
///     redactor.redact("cannot reach mongodb://app:p%40ss-w0rd@db:27017/ (p@ss-w0rd)"),
///     "cannot reach mongodb://app:[REDACTED]@db:27017/ ([REDACTED])"
/// );
/// assert!(!format!("{redactor:?}").contains("w0rd"));
/// ```
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Arc<[String]>,
}

impl Redactor {
    /// A redactor for the password of `uri` (none if it has none).
    pub fn for_uri(uri: &str) -> Self {
        let mut secrets = Vec::new();
        if let Some(password) = uri_password(uri) {
            secrets.push(percent_decode(password));
            secrets.push(password.to_owned());
        }
        Self::from_secrets(secrets)
    }

    /// Adds a secret (e.g. the password the driver parsed).
    pub(crate) fn with_secret(&self, secret: &str) -> Self {
        let mut secrets = self.secrets.to_vec();
        secrets.push(secret.to_owned());
        Self::from_secrets(secrets)
    }

    fn from_secrets(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets: Arc::from(secrets),
        }
    }

    /// `text` with every `scheme://user:password@` password and every known
    /// secret replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = redact_uri_passwords(text);
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
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

/// The password part of `scheme://user:password@hosts...`, as written.
fn uri_password(uri: &str) -> Option<&str> {
    let rest = &uri[uri.find("://")? + 3..];
    // Hosts hold no '@'; a password may (unencoded, which the driver refuses,
    // but it must not leak through the refusal either).
    let userinfo = &rest[..rest.rfind('@')?];
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

    #[test]
    fn passwords_are_found_and_decoded() {
        assert_eq!(uri_password("mongodb://u:p@h/"), Some("p"));
        assert_eq!(uri_password("mongodb://u:p@ss@h/"), Some("p@ss"));
        assert_eq!(uri_password("mongodb://u@h/"), None);
        assert_eq!(uri_password("mongodb://h:27017/"), None);
        assert_eq!(uri_password("no uri"), None);
        assert_eq!(percent_decode("a%40b%2Fc%zz%4"), "a@b/c%zz%4");
        let r = Redactor::for_uri("mongodb://u:a%3Ab@h/");
        assert_eq!(r.redact("x a:b y a%3Ab z"), "x [REDACTED] y [REDACTED] z");
        let r = r.with_secret("more");
        assert_eq!(r.redact("more"), REDACTED);
    }
}
