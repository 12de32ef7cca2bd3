//! `allow` and `block`: keep or drop events by name.

use std::sync::Arc;

use eventtracking_core::{Event, ProcessResult, Processor};

/// Matches event names against globs (`navigation.*`) and/or a regex.
#[derive(Debug, Clone)]
pub struct NameMatcher {
    globs: globset::GlobSet,
    regex: Option<regex::Regex>,
}

impl NameMatcher {
    /// A matcher from globs and an optional regex; an error names the bad pattern.
    pub fn new(globs: &[String], regex: Option<&str>) -> Result<Self, String> {
        let mut set = globset::GlobSetBuilder::new();
        for glob in globs {
            let compiled = globset::GlobBuilder::new(glob)
                .literal_separator(false)
                .build()
                .map_err(|e| format!("bad glob {glob:?}: {e}"))?;
            set.add(compiled);
        }
        let globs = set.build().map_err(|e| e.to_string())?;
        let regex = regex
            .map(|r| regex::Regex::new(r).map_err(|e| format!("bad regex {r:?}: {e}")))
            .transpose()?;
        Ok(NameMatcher { globs, regex })
    }

    /// Whether the name matches any glob or the regex.
    pub fn is_match(&self, name: &str) -> bool {
        self.globs.is_match(name) || self.regex.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// Keeps (`allow`) or drops (`block`) events by name.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking::{Event, NameFilter, Processor};
/// let allow = NameFilter::allow(&["navigation.*".to_owned()], None).unwrap();
/// let nav = Arc::new(Event::new("navigation.request", serde_json::Value::Null).unwrap());
/// let other = Arc::new(Event::new("address.create", serde_json::Value::Null).unwrap());
/// assert!(allow.process(nav).unwrap().is_some());
/// assert!(allow.process(other).unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct NameFilter {
    matcher: NameMatcher,
    keep_matches: bool,
}

impl NameFilter {
    /// Keeps only events whose name matches.
    pub fn allow(globs: &[String], regex: Option<&str>) -> Result<Self, String> {
        Ok(NameFilter {
            matcher: NameMatcher::new(globs, regex)?,
            keep_matches: true,
        })
    }

    /// Drops events whose name matches.
    pub fn block(globs: &[String], regex: Option<&str>) -> Result<Self, String> {
        Ok(NameFilter {
            matcher: NameMatcher::new(globs, regex)?,
            keep_matches: false,
        })
    }
}

impl Processor for NameFilter {
    fn name(&self) -> &str {
        if self.keep_matches {
            "allow"
        } else {
            "block"
        }
    }

    fn process(&self, event: Arc<Event>) -> ProcessResult {
        let keep = self.matcher.is_match(event.name()) == self.keep_matches;
        Ok(keep.then_some(event))
    }
}
