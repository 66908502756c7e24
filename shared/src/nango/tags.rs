//! Connection tags: Nango's string → string labels, which carry a connection's owner.
//!
//! Built only from values that pass Nango's own tag rules, so a session request never fails on a
//! tag we made up. Keys are lowercase already (Nango lowercases them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const END_USER_ID: &str = "end_user_id";
pub const END_USER_EMAIL: &str = "end_user_email";
pub const END_USER_DISPLAY_NAME: &str = "end_user_display_name";
pub const ORGANIZATION_ID: &str = "organization_id";

/// Nango: at most 10 tags, values of 1 to 255 characters — counted as JavaScript counts them, in
/// UTF-16 code units, so an emoji is two.
pub const MAX_TAGS: usize = 10;
pub const MAX_VALUE_UNITS: usize = 255;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    pub fn new() -> Self {
        Tags::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets `key` when `value` is a valid tag value; returns whether it did.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        if !is_valid_value(value) {
            return false;
        }
        self.0.insert(key.to_owned(), value.to_owned());
        true
    }

    /// Sets `key` only where it is not set yet, and only within Nango's limit on the number of tags.
    pub fn insert_missing(&mut self, key: &str, value: &str) {
        if !self.0.contains_key(key) && self.0.len() < MAX_TAGS {
            self.insert(key, value);
        }
    }
}

impl FromIterator<(String, String)> for Tags {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Tags(iter.into_iter().collect())
    }
}

pub fn is_valid_value(value: &str) -> bool {
    let units = value.encode_utf16().count();
    (1..=MAX_VALUE_UNITS).contains(&units)
}

/// The longest prefix of `value` that is a valid tag value, cut between characters.
pub fn truncate_value(value: &str) -> &str {
    let mut units = 0;
    for (index, c) in value.char_indices() {
        units += c.len_utf16();
        if units > MAX_VALUE_UNITS {
            return &value[..index];
        }
    }
    value
}

/// Nango validates `end_user_email` as an email (zod's `email()`); a value it would refuse is
/// left out rather than sent. This follows zod's pattern: a dot-atom local part without leading,
/// trailing or doubled dots, and a domain of dot-separated labels ending in an alphabetic TLD.
pub fn is_valid_email(value: &str) -> bool {
    if !is_valid_value(value) {
        return false;
    }
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_'+-.".contains(c))
        && local
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "_+-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_check_follows_nangos_rules() {
        for ok in [
            "alice@example.com",
            "a.b+c@sub.example.co",
            "o'neil@example.org",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@localhost",
            "alice@example.c",
            ".alice@example.com",
            "al..ice@example.com",
            "alice@exa mple.com",
            "alice@-example.com",
            "alice@example.123",
            "alice'@example.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn values_must_be_1_to_255_utf16_units() {
        let mut tags = Tags::new();
        assert!(!tags.insert("k", ""));
        assert!(!tags.insert("k", &"x".repeat(256)));
        assert!(tags.insert("k", &"é".repeat(255)));
        assert_eq!(tags.get("k").map(|v| v.chars().count()), Some(255));
        // 128 emoji are 256 UTF-16 units: too long for Nango, though only 128 characters.
        assert!(!tags.insert("e", &"😀".repeat(128)));
        assert!(tags.insert("e", &"😀".repeat(127)));
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let long = "é".repeat(300);
        assert_eq!(truncate_value(&long).chars().count(), MAX_VALUE_UNITS);
        let emoji = "😀".repeat(200);
        let cut = truncate_value(&emoji);
        assert_eq!(cut.chars().count(), 127);
        assert!(is_valid_value(cut));
        assert_eq!(truncate_value("short"), "short");
    }

    #[test]
    fn insert_missing_respects_the_tag_limit() {
        let mut tags: Tags = (0..MAX_TAGS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        tags.insert_missing(END_USER_ID, "u1");
        assert_eq!(tags.get(END_USER_ID), None);
    }

    #[test]
    fn insert_missing_never_overwrites() {
        let mut tags = Tags::new();
        tags.insert(END_USER_ID, "u1");
        tags.insert_missing(END_USER_ID, "u2");
        tags.insert_missing(ORGANIZATION_ID, "o1");
        assert_eq!(tags.get(END_USER_ID), Some("u1"));
        assert_eq!(tags.get(ORGANIZATION_ID), Some("o1"));
    }
}
