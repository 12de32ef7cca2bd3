//! The message of a TOML parse error, which never echoes a secret: toml
//! quotes the offending source line, so on a line whose key looks secret
//! (or inside a multi-line string opened by one) only the position and
//! toml's message are given.

use eventtracking_core::redact::{is_secret_key, Redactor};

/// What [`ConfigError::Parse`](crate::ConfigError::Parse) says about `error`
/// in `source`.
pub(crate) fn parse_error_message(source: &str, error: &toml::de::Error) -> String {
    let lines = SecretLines::scan(source);
    let redactor = Redactor::new().with_secret_values(
        lines
            .values
            .iter()
            .map(|value| ("password", value.as_str())),
    );
    let Some(span) = error.span() else {
        // No position: give toml's message alone, never the source.
        return redactor.redact(error.message().trim_end()).into_owned();
    };
    let first = line_of(source, span.start);
    let last = line_of(source, span.end.max(span.start));
    if (first..=last).any(|line| lines.secret.get(line).copied().unwrap_or(false)) {
        let line_start = source[..span.start.min(source.len())]
            .rfind('\n')
            .map_or(0, |at| at + 1);
        let column = source[line_start..span.start.min(source.len())]
            .chars()
            .count()
            + 1;
        format!(
            "TOML parse error at line {}, column {column}: {} (the line is not shown: its key looks secret)",
            first + 1,
            redactor.redact(error.message().trim_end())
        )
    } else {
        redactor.redact(&error.to_string()).into_owned()
    }
}

/// How many more `[` than `]` a line holds (a rough count: brackets inside
/// strings count too, which only ever hides more).
fn bracket_balance(line: &str) -> i64 {
    line.chars().fold(0, |n, c| match c {
        '[' => n + 1,
        ']' => n - 1,
        _ => n,
    })
}

/// The 0-based line holding byte `offset`.
fn line_of(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    source.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// Which lines of a TOML text hold a secret, and the secret values seen.
struct SecretLines {
    secret: Vec<bool>,
    values: Vec<String>,
}

impl SecretLines {
    fn scan(source: &str) -> Self {
        let mut secret = Vec::new();
        let mut values = Vec::new();
        // The delimiter of a multi-line string still open, and whether its key is secret.
        let mut open: Option<(&str, bool)> = None;
        // Brackets still open of a secret key's multi-line array (`write_keys = [`).
        let mut secret_array_depth = 0i64;
        for line in source.split('\n') {
            if secret_array_depth > 0 {
                secret.push(true);
                let item = line.trim().trim_end_matches(',').trim_end_matches(']');
                let item = item.trim().trim_matches(['"', '\'']);
                if !item.is_empty() {
                    values.push(item.to_owned());
                }
                secret_array_depth += bracket_balance(line);
                continue;
            }
            if let Some((delimiter, is_secret)) = open {
                secret.push(is_secret);
                if is_secret && !line.trim().is_empty() {
                    values.push(line.trim().to_owned());
                }
                if line.contains(delimiter) {
                    open = None;
                }
                continue;
            }
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            let key = key.trim().trim_matches(['"', '\'']);
            let is_secret = (is_secret_key(key) && !value.trim().is_empty())
                || Redactor::new().redact(line) != line;
            secret.push(is_secret);
            if is_secret && bracket_balance(value) > 0 {
                secret_array_depth = bracket_balance(value);
            }
            if is_secret {
                let value = value.trim().trim_matches(['"', '\'']);
                if !value.is_empty() {
                    values.push(value.to_owned());
                }
            }
            for delimiter in ["\"\"\"", "'''"] {
                if value.matches(delimiter).count() % 2 == 1 {
                    open = Some((delimiter, is_secret));
                    break;
                }
            }
        }
        SecretLines { secret, values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(source: &str) -> String {
        let error = toml::from_str::<toml::Table>(source).unwrap_err();
        parse_error_message(source, &error)
    }

    #[test]
    fn a_secret_line_is_never_echoed() {
        for (source, secret) in [
            ("[a]\nsasl.password = \"hunter2\n", "hunter2"),
            (
                "[a]\npassword = \"\"\"s3cr3t-one\ns3cr3t-two\n",
                "s3cr3t-two",
            ),
            (
                "[a]\npassword = \"\"\"s3cr3t-one\ns3cr3t-two\n",
                "s3cr3t-one",
            ),
            ("[a]\n\"sasl.passwd\" = \"abc\\qdef\"\n", "def"),
            ("[a]\ntoken = bare-s3cret\n", "bare-s3cret"),
            ("[a]\nx = { password = \"inl1ne\" \n", "inl1ne"),
            (
                "[collector]\nwrite_keys = [\n  \"k-one\",\n  \"k-two\n]\n",
                "k-two",
            ),
            ("[collector]\nwrite_keys = [\"k-one\", \"k-tw\n", "k-tw"),
        ] {
            let text = message(source);
            assert!(!text.contains(secret), "{source:?} gave {text}");
            assert!(text.contains("line "), "{text}");
        }
    }

    #[test]
    fn other_lines_keep_toml_s_snippet() {
        let text = message("[a]\npassword = \"fine\"\nbrokers = \"unterminated\n");
        assert!(text.contains("brokers = \"unterminated"), "{text}");
        assert!(!text.contains("fine"), "{text}");
    }
}
