//! Reading a request body: its content type and encoding, the size limit
//! (compressed and decoded).

use std::io::Read;

use axum::body::{Body, Bytes};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::response::Problem;

/// Checks the content type (`application/json`, or `text/plain` as
/// `navigator.sendBeacon` sends a string) and the encoding (none,
/// `identity` or `gzip`); says whether the body is gzipped.
pub(crate) fn check_headers(headers: &HeaderMap, max_body_bytes: usize) -> Result<bool, Problem> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    // The usual case, what the browser tracker sends, without parsing.
    if content_type == "application/json" && !headers.contains_key(CONTENT_ENCODING) {
        return match declared_length(headers) {
            Some(length) if length > max_body_bytes as u64 => Err(too_large(max_body_bytes)),
            _ => Ok(false),
        };
    }
    let (essence, parameters) = content_type.split_once(';').unwrap_or((content_type, ""));
    let essence = essence.trim();
    if !essence.eq_ignore_ascii_case("application/json")
        && !essence.eq_ignore_ascii_case("text/plain")
    {
        let shown = if essence.is_empty() { "none" } else { essence };
        return Err(Problem::unsupported(format!(
            "content type {shown:?} is not supported: send application/json or text/plain (JSON text)"
        )));
    }
    for parameter in parameters.split(';') {
        if let Some((name, value)) = parameter.split_once('=') {
            let value = value.trim().trim_matches('"');
            if name.trim().eq_ignore_ascii_case("charset")
                && !value.eq_ignore_ascii_case("utf-8")
                && !value.eq_ignore_ascii_case("utf8")
            {
                return Err(Problem::unsupported(format!(
                    "charset {value:?} is not supported: JSON is UTF-8"
                )));
            }
        }
    }
    let gzip = match headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().map(str::trim))
    {
        None => false,
        Some(Ok(encoding)) if encoding.eq_ignore_ascii_case("identity") => false,
        Some(Ok(encoding)) if encoding.eq_ignore_ascii_case("gzip") => true,
        Some(_) => {
            return Err(Problem::unsupported(
                "content encoding is not supported: send gzip or no Content-Encoding",
            ))
        }
    };
    if declared_length(headers).is_some_and(|length| length > max_body_bytes as u64) {
        return Err(too_large(max_body_bytes));
    }
    Ok(gzip)
}

/// The body's length as its `Content-Length` declares it, if it does.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn too_large(max_body_bytes: usize) -> Problem {
    Problem::too_large(format!(
        "the body is larger than max_body_bytes ({max_body_bytes} bytes, after gzip decoding too)"
    ))
}

/// Reads at most `max_body_bytes` of the body, and as much decoded.
pub(crate) async fn read(body: Body, gzip: bool, max_body_bytes: usize) -> Result<Bytes, Problem> {
    let collected = match Limited::new(body, max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(too_large(max_body_bytes))
        }
        Err(error) => {
            return Err(Problem::bad_request(format!(
                "could not read the body: {error}"
            )))
        }
    };
    if !gzip {
        return Ok(collected);
    }
    // One byte past the limit tells "too large" from "exactly the limit".
    let mut decoded = Vec::new();
    let limit = max_body_bytes as u64 + 1;
    flate2::read::GzDecoder::new(&collected[..])
        .take(limit)
        .read_to_end(&mut decoded)
        .map_err(|error| Problem::bad_request(format!("the body is not valid gzip: {error}")))?;
    if decoded.len() > max_body_bytes {
        return Err(too_large(max_body_bytes));
    }
    Ok(Bytes::from(decoded))
}
