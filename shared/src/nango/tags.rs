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

/// Nango: at most 10 tags, keys of at most 64 characters, values of 1 to 255 characters — counted
/// as JavaScript counts them, in UTF-16 code units, so an emoji is two.
pub const MAX_TAGS: usize = 10;
pub const MAX_KEY_CHARS: usize = 64;
pub const MAX_VALUE_UNITS: usize = 255;

/// The tags that say who owns a connection: kept first when tags must be cut to the limit.
const OWNER_KEYS: [&str; 2] = [END_USER_ID, ORGANIZATION_ID];

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(BTreeMap<String, String>);

/// Every key, but only the owner ids' values: the others are emails, display names or whatever
/// the app put there, and a `Debug` can reach a log line (through a `Connection`, an `AuthEvent`,
/// a failed assertion). Logs carry ids only.
impl std::fmt::Debug for Tags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(key, value)| {
                let shown: &dyn std::fmt::Debug = if OWNER_KEYS.contains(&key.as_str()) {
                    value
                } else {
                    &Redacted
                };
                (key, shown)
            }))
            .finish()
    }
}

/// What a `Debug` shows in place of a value it must not.
pub struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

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

    /// Sets an owner tag, overwriting what is there; if that makes one tag too many for Nango, a
    /// tag that names no owner makes room.
    pub fn set_owner(&mut self, key: &str, value: &str) {
        if !self.insert(key, value) {
            return;
        }
        if self.0.len() > MAX_TAGS {
            let spare = self
                .0
                .keys()
                .rev()
                .find(|k| !OWNER_KEYS.contains(&k.as_str()))
                .cloned();
            if let Some(spare) = spare {
                self.0.remove(&spare);
            }
        }
    }

    /// Tags from outside (a webhook, Nango's listing), kept only as far as Nango itself would
    /// accept them back: valid keys and values, at most [`MAX_TAGS`], the owner tags first. So what
    /// is stored is bounded, and a reconnect never fails on a tag we hand back.
    pub fn from_untrusted(entries: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut valid: Vec<(String, String)> = entries
            .into_iter()
            .filter(|(key, value)| is_valid_key(key) && is_valid_value(value))
            .collect();
        valid.sort_by_key(|(key, _)| !OWNER_KEYS.contains(&key.as_str()));
        let mut tags = Tags::new();
        for (key, value) in valid {
            if tags.0.len() == MAX_TAGS {
                break;
            }
            tags.0.entry(key).or_insert(value);
        }
        tags
    }
}

impl Tags {
    /// Tags from a JSON value as Nango sends them (a webhook's `tags`, a listed connection's):
    /// string values only, anything else skipped rather than failing the whole message; then as
    /// [`Tags::from_untrusted`].
    pub fn from_json(value: Option<serde_json::Value>) -> Self {
        match value {
            Some(serde_json::Value::Object(map)) => {
                Tags::from_untrusted(map.into_iter().filter_map(|(key, value)| match value {
                    serde_json::Value::String(value) => Some((key, value)),
                    _ => None,
                }))
            }
            _ => Tags::new(),
        }
    }
}

impl FromIterator<(String, String)> for Tags {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Tags(iter.into_iter().collect())
    }
}

/// Nango's rule for tag keys: `^[a-zA-Z][a-zA-Z0-9_\-./]*$`, at most 64 characters.
pub fn is_valid_key(key: &str) -> bool {
    key.len() <= MAX_KEY_CHARS
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
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
    fn debug_shows_keys_and_owner_ids_only() {
        let tags: Tags = [
            (END_USER_ID, "user-42"),
            (ORGANIZATION_ID, "org-7"),
            (END_USER_EMAIL, "alice@example.com"),
            (END_USER_DISPLAY_NAME, "Alice Example"),
            ("organization_display_name", "Acme Org"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let debug = format!("{tags:?}");
        assert_eq!(
            debug,
            r#"{"end_user_display_name": <redacted>, "end_user_email": <redacted>, "end_user_id": "user-42", "organization_display_name": <redacted>, "organization_id": "org-7"}"#
        );
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
    fn owner_tags_overwrite_and_make_room_within_the_limit() {
        let mut tags: Tags = (0..MAX_TAGS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        tags.set_owner(END_USER_ID, "u1");
        tags.set_owner(END_USER_ID, "u2");
        tags.set_owner(ORGANIZATION_ID, "o1");
        assert_eq!(tags.iter().count(), MAX_TAGS);
        assert_eq!(tags.get(END_USER_ID), Some("u2"));
        assert_eq!(tags.get(ORGANIZATION_ID), Some("o1"));
        assert_eq!(tags.get("k0"), Some("v"), "the first labels stay");
    }

    #[test]
    fn untrusted_tags_keep_what_nango_accepts_owner_first() {
        let mut entries: Vec<(String, String)> = (0..40)
            .map(|i| (format!("a{i:02}"), "v".to_owned()))
            .collect();
        entries.push(("organization_id".into(), "o1".into()));
        entries.push(("end_user_id".into(), "u1".into()));
        entries.push(("9starts_with_digit".into(), "v".into()));
        entries.push(("k".repeat(65), "v".into()));
        entries.push(("empty".into(), String::new()));
        entries.push(("huge".into(), "x".repeat(300_000)));
        let tags = Tags::from_untrusted(entries);
        assert_eq!(tags.iter().count(), MAX_TAGS);
        assert_eq!(tags.get(END_USER_ID), Some("u1"));
        assert_eq!(tags.get(ORGANIZATION_ID), Some("o1"));
        assert!(
            tags.iter()
                .all(|(k, v)| is_valid_key(k) && is_valid_value(v))
        );
    }
}

/// Fuzz targets (see [`crate::fuzzing`]): tags from outside, held to Nango's rules.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{fuzz, text};

    /// Nango's key rule, `^[a-zA-Z][a-zA-Z0-9_\-./]*$` and at most 64 characters, written out.
    fn nango_accepts_key(key: &str) -> bool {
        let mut chars = key.chars();
        key.chars().count() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => prop::sample::select(vec![END_USER_ID, ORGANIZATION_ID, END_USER_EMAIL])
                .prop_map(str::to_owned),
            3 => "[a-zA-Z][a-zA-Z0-9_./-]{0,70}",
            2 => text(80),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => text(300),
            1 => "(😀|é|x){0,130}",
        ]
    }

    #[test]
    fn keys_and_values_follow_nangos_rules() {
        fuzz(
            "nango::tags::is_valid_key / is_valid_value",
            (key(), value()),
            |(key, value)| {
                prop_assert_eq!(is_valid_key(&key), nango_accepts_key(&key), "{:?}", key);
                let units = value.encode_utf16().count();
                prop_assert_eq!(is_valid_value(&value), (1..=255).contains(&units));
                Ok(())
            },
        );
    }

    #[test]
    fn truncation_is_the_longest_valid_prefix() {
        fuzz("nango::tags::truncate_value", value(), |value| {
            let cut = truncate_value(&value);
            prop_assert!(value.starts_with(cut));
            prop_assert!(cut.encode_utf16().count() <= MAX_VALUE_UNITS);
            if is_valid_value(&value) {
                prop_assert_eq!(cut, value.as_str());
            } else if let Some(next) = value[cut.len()..].chars().next() {
                // One more character would be too many.
                prop_assert!(cut.encode_utf16().count() + next.len_utf16() > MAX_VALUE_UNITS);
            }
            if !value.is_empty() {
                prop_assert!(is_valid_value(cut));
            }
            Ok(())
        });
    }

    #[test]
    fn untrusted_tags_are_at_most_ten_valid_ones_owner_tags_kept() {
        fuzz(
            "nango::tags::Tags::from_untrusted",
            prop::collection::vec((key(), value()), 0..40),
            |entries| {
                let tags = Tags::from_untrusted(entries.clone());
                prop_assert!(tags.iter().count() <= MAX_TAGS);
                // The first acceptable value of a key, in the order given.
                let first_valid = |key: &str| {
                    entries
                        .iter()
                        .find(|(k, v)| k == key && is_valid_key(k) && is_valid_value(v))
                        .map(|(_, v)| v.as_str())
                };
                for (key, value) in tags.iter() {
                    prop_assert!(nango_accepts_key(key) && is_valid_value(value));
                    prop_assert_eq!(Some(value), first_valid(key), "{}", key);
                }
                for owner in OWNER_KEYS {
                    prop_assert_eq!(tags.get(owner), first_valid(owner), "{}", owner);
                }
                let distinct_valid: std::collections::BTreeSet<&str> = entries
                    .iter()
                    .filter(|(k, v)| is_valid_key(k) && is_valid_value(v))
                    .map(|(k, _)| k.as_str())
                    .collect();
                prop_assert_eq!(tags.iter().count(), distinct_valid.len().min(MAX_TAGS));
                Ok(())
            },
        );
    }
}
