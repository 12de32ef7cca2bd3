//! [`TopicTemplate`]: the topic of each message, fixed or from the event
//! name, and the checks of Kafka topic names.

use std::borrow::Cow;
use std::str::FromStr;

use crate::KafkaBackendError;

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;

/// Whether Kafka allows this character in a topic name (`[A-Za-z0-9._-]`).
///
/// ```
/// use eventtracking_kafka::is_topic_char;
/// assert!(is_topic_char('.') && is_topic_char('_') && is_topic_char('Z'));
/// assert!(!is_topic_char('/') && !is_topic_char(' ') && !is_topic_char('é'));
/// ```
pub fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// `text` with every character outside `[A-Za-z0-9._-]` replaced by `_`.
///
/// ```
/// assert_eq!(eventtracking_kafka::sanitize_topic_part("user/signup:ok é"), "user_signup_ok__");
/// ```
pub fn sanitize_topic_part(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_topic_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if is_topic_char(c) { c } else { '_' })
                .collect(),
        )
    }
}

/// Checks a whole topic name's length and that it is not `.` or `..`
/// (its characters are checked by [`is_topic_char`]); `Err` says why.
///
/// ```
/// use eventtracking_kafka::check_topic;
/// assert!(check_topic("events").is_ok());
/// assert!(check_topic("").is_err() && check_topic("..").is_err());
/// assert!(check_topic(&"a".repeat(250)).is_err());
/// ```
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic is empty".into());
    }
    if topic == "." || topic == ".." {
        return Err(format!("topic {topic:?} is not allowed by Kafka"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "topic `{}…` is {} characters long, Kafka allows at most {MAX_TOPIC_LEN}",
            topic.chars().take(32).collect::<String>(),
            topic.len()
        ));
    }
    Ok(())
}

/// The topic of each message: a fixed name, or a template in which `{name}`
/// stands for the event name with every character outside
/// `[A-Za-z0-9._-]` replaced by `_` (see [`sanitize_topic_part`]).
///
/// The template's own text must consist of `[A-Za-z0-9._-]`. An event whose
/// topic would be longer than [`MAX_TOPIC_LEN`] (or `.` / `..`) fails
/// permanently and is dead-lettered.
///
/// ```
/// use eventtracking_kafka::TopicTemplate;
/// let template: TopicTemplate = "events.{name}".parse().unwrap();
/// assert_eq!(template.topic_for("page.view").unwrap(), "events.page.view");
/// assert_eq!(template.topic_for("user/signup").unwrap(), "events.user_signup");
/// let fixed: TopicTemplate = "events".parse().unwrap();
/// assert_eq!(fixed.topic_for("anything").unwrap(), "events");
/// assert!("events.{id}".parse::<TopicTemplate>().is_err());
/// assert!("my topic".parse::<TopicTemplate>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    text: String,
    /// Literal parts; `{name}` goes between consecutive parts. One part: a fixed topic.
    parts: Vec<String>,
}

impl TopicTemplate {
    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the topic is the same for every event.
    pub fn is_fixed(&self) -> bool {
        self.parts.len() == 1
    }

    /// The topic for an event name, or why there is none.
    pub fn topic_for(&self, event_name: &str) -> Result<Cow<'_, str>, String> {
        if self.is_fixed() {
            return Ok(Cow::Borrowed(&self.text));
        }
        let name = sanitize_topic_part(event_name);
        let mut topic = String::with_capacity(self.text.len() + name.len());
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                topic.push_str(&name);
            }
            topic.push_str(part);
        }
        check_topic(&topic).map_err(|reason| format!("event `{event_name}`: {reason}"))?;
        Ok(Cow::Owned(topic))
    }
}

impl FromStr for TopicTemplate {
    type Err = KafkaBackendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| KafkaBackendError::InvalidTopic {
            template: text.to_owned(),
            reason,
        };
        let parts: Vec<String> = text.split("{name}").map(str::to_owned).collect();
        for part in &parts {
            if let Some(c) = part.chars().find(|c| !is_topic_char(*c)) {
                let hint = if c == '{' || c == '}' {
                    " (the only placeholder is `{name}`)"
                } else {
                    ""
                };
                return Err(invalid(format!(
                    "character {c:?} is not allowed in a topic name, only [A-Za-z0-9._-]{hint}"
                )));
            }
        }
        if parts.len() == 1 {
            check_topic(text).map_err(invalid)?;
        } else if parts.concat().len() + parts.len() - 1 > MAX_TOPIC_LEN {
            return Err(invalid(format!(
                "longer than {MAX_TOPIC_LEN} characters even with one-character names"
            )));
        }
        Ok(TopicTemplate {
            text: text.to_owned(),
            parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_topics_are_refused() {
        for bad in ["", ".", "..", "a b", "events.{id}", "x{", &"a".repeat(250)] {
            assert!(bad.parse::<TopicTemplate>().is_err(), "{bad:?}");
        }
        let t: TopicTemplate = "{name}".parse().unwrap();
        assert!(t.topic_for(".").is_err());
        assert!(t.topic_for(&"a".repeat(250)).is_err());
        let t: TopicTemplate = "a.{name}.b.{name}".parse().unwrap();
        assert_eq!(t.topic_for("x y").unwrap(), "a.x_y.b.x_y");
    }
}
