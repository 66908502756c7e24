//! `GET /connections` in pages: the caller's own connections and their organization's, merged
//! newest first, each exactly once across the pages, through the two indexes (never a scan).
//!
//! The two indexes are read as two streams that never overlap: *mine* (`byEndUser`, the caller's
//! own) and *team* (`byOrganization`, the organization's, less the caller's own, which *mine*
//! already has). Each stream resumes exactly after the last item it contributed, so merging them
//! needs no de-duplication across pages, and tombstones (deleted connections) are read past until a
//! page is full or the streams are exhausted: they never make a page short while more follow.
//!
//! The cursor holds only those two positions (`createdAt` and `connectionId` of an item), and the
//! index keys are always the caller's own: a cursor can move the caller within what they may see,
//! never widen it. It is also bound to the caller, so one caller's cursor is refused for another.

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BY_END_USER_INDEX, BY_ORGANIZATION_INDEX, ConnectionStore, Item, StoreError};
use crate::connection::{Connection, Status};
use crate::identity::{EndUserId, OrganizationId};
use crate::nango::ConnectionId;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;

/// Whose connections to list: the end user's, and the organization's when the policy lets members
/// see each other's.
#[derive(Debug, Clone)]
pub struct Owners<'a> {
    pub end_user_id: &'a EndUserId,
    pub organization_id: Option<&'a OrganizationId>,
}

/// Where a page ends: the last item each stream contributed so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    #[serde(rename = "o")]
    owners: String,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    mine: Option<Position>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    team: Option<Position>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Position {
    #[serde(rename = "c")]
    created_at: String,
    #[serde(rename = "i")]
    connection_id: ConnectionId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is malformed, altered, or another caller's")]
pub struct InvalidCursor;

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a cursor serializes");
        URL_SAFE_NO_PAD.encode(json)
    }

    /// A cursor handed out to these `owners`, and only to them.
    pub fn decode(text: &str, owners: &Owners<'_>) -> Result<Self, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidCursor)?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| InvalidCursor)?;
        let positions_are_sound = [&cursor.mine, &cursor.team]
            .into_iter()
            .flatten()
            .all(|p| is_timestamp(&p.created_at));
        if cursor.owners != owners.fingerprint() || !positions_are_sound {
            return Err(InvalidCursor);
        }
        Ok(cursor)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the store writes `createdAt`.
fn is_timestamp(value: &str) -> bool {
    value.len() == 24
        && value.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

impl Owners<'_> {
    /// Binds a cursor to whose list it pages. Not a secret: what a caller may see is decided by
    /// their token, not by this; it only refuses a cursor that was made for someone else.
    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.end_user_id.as_bytes());
        hash.update([0]);
        if let Some(organization) = self.organization_id {
            hash.update(organization.as_bytes());
        }
        hex::encode(&hash.finalize()[..8])
    }
}

pub struct Page {
    pub connections: Vec<Connection>,
    pub next: Option<Cursor>,
}

/// One of the two streams: which index, under which key, and what it leaves out.
struct Stream<'a> {
    index: &'static str,
    key_name: &'static str,
    key: &'a str,
    /// The team stream leaves out the caller's own connections (the mine stream has them).
    except_end_user: Option<&'a str>,
}

impl ConnectionStore {
    /// Up to `size` live connections of `owners`, newest first, after `cursor`.
    pub async fn list_page(
        &self,
        owners: &Owners<'_>,
        size: usize,
        cursor: Option<Cursor>,
    ) -> Result<Page, StoreError> {
        let cursor = cursor.unwrap_or_default();
        let mine = Stream {
            index: BY_END_USER_INDEX,
            key_name: "endUserId",
            key: owners.end_user_id,
            except_end_user: None,
        };
        let team = owners.organization_id.map(|organization| Stream {
            index: BY_ORGANIZATION_INDEX,
            key_name: "organizationId",
            key: organization,
            except_end_user: Some(owners.end_user_id),
        });
        // One more than a page from each stream tells whether anything follows the page.
        let want = size + 1;
        let (mine_items, team_items) =
            tokio::try_join!(self.live_after(&mine, cursor.mine.as_ref(), want), async {
                match &team {
                    Some(team) => self.live_after(team, cursor.team.as_ref(), want).await,
                    None => Ok(Vec::new()),
                }
            })?;

        let mut next = Cursor {
            owners: owners.fingerprint(),
            ..cursor
        };
        let (mut mine_items, mut team_items) = (
            mine_items.into_iter().peekable(),
            team_items.into_iter().peekable(),
        );
        let mut connections = Vec::with_capacity(size);
        while connections.len() < size {
            // Newest first; on a tie, the caller's own first.
            let take_mine = match (mine_items.peek(), team_items.peek()) {
                (Some(m), Some(t)) => m.created_at >= t.created_at,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (item, position) = if take_mine {
                (mine_items.next(), &mut next.mine)
            } else {
                (team_items.next(), &mut next.team)
            };
            let Some(item) = item else { break };
            *position = Some(Position {
                created_at: item.created_at.clone(),
                connection_id: item.id.clone(),
            });
            connections.push(item);
        }
        let more = mine_items.peek().is_some() || team_items.peek().is_some();
        Ok(Page {
            connections,
            next: more.then_some(next),
        })
    }

    /// Up to `want` live connections of `stream`, newest first, after `position`.
    async fn live_after(
        &self,
        stream: &Stream<'_>,
        position: Option<&Position>,
        want: usize,
    ) -> Result<Vec<Connection>, StoreError> {
        let mut start = position.map(|p| {
            Item::from([
                (
                    stream.key_name.to_owned(),
                    AttributeValue::S(stream.key.to_owned()),
                ),
                (
                    "createdAt".to_owned(),
                    AttributeValue::S(p.created_at.clone()),
                ),
                (
                    "connectionId".to_owned(),
                    AttributeValue::S(p.connection_id.to_string()),
                ),
            ])
        });
        let mut live = Vec::with_capacity(want);
        let now = super::epoch_now();
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(stream.index)
                .key_condition_expression("#key = :key")
                .expression_attribute_names("#key", stream.key_name)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":key", AttributeValue::S(stream.key.to_owned()))
                .expression_attribute_values(
                    ":deleted",
                    AttributeValue::S(Status::Deleted.as_str().to_owned()),
                )
                // Only tombstones carry it today; an expired item is gone whatever it says.
                .expression_attribute_names("#expires", super::EXPIRES_AT)
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .scan_index_forward(false)
                // Read a little past what is missing: tombstones are filtered after the limit.
                .limit(i32::try_from((want - live.len()) * 2).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            query = match stream.except_end_user {
                Some(end_user) => query
                    .filter_expression(
                        "#status <> :deleted AND (attribute_not_exists(#expires) OR #expires > :now) AND (attribute_not_exists(#owner) OR #owner <> :owner)",
                    )
                    .expression_attribute_names("#owner", "endUserId")
                    .expression_attribute_values(":owner", AttributeValue::S(end_user.to_owned())),
                None => query.filter_expression(
                    "#status <> :deleted AND (attribute_not_exists(#expires) OR #expires > :now)",
                ),
            };
            let output = query.send().await.map_err(super::store_error)?;
            for item in output.items() {
                match super::from_item(item) {
                    Ok(connection) => live.push(connection),
                    // One bad item must not hide all the others: skip it, and say so.
                    Err(err) => tracing::error!(error = %err, "skipping a malformed item"),
                }
                if live.len() == want {
                    return Ok(live);
                }
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(live),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners<'a>(user: &'a EndUserId, org: Option<&'a OrganizationId>) -> Owners<'a> {
        Owners {
            end_user_id: user,
            organization_id: org,
        }
    }

    #[test]
    fn a_cursor_round_trips_for_its_caller_only() {
        let (alice, bob) = (
            EndUserId::parse("alice").unwrap(),
            EndUserId::parse("bob").unwrap(),
        );
        let acme = OrganizationId::parse("acme").unwrap();
        let cursor = Cursor {
            owners: owners(&alice, Some(&acme)).fingerprint(),
            mine: Some(Position {
                created_at: "2026-11-26T10:00:00.000Z".into(),
                connection_id: ConnectionId::parse("c1").unwrap(),
            }),
            team: None,
        };
        let text = cursor.encode();
        assert_eq!(
            Cursor::decode(&text, &owners(&alice, Some(&acme))),
            Ok(cursor)
        );
        assert_eq!(
            Cursor::decode(&text, &owners(&bob, Some(&acme))),
            Err(InvalidCursor)
        );
        assert_eq!(
            Cursor::decode(&text, &owners(&alice, None)),
            Err(InvalidCursor)
        );
    }

    #[test]
    fn malformed_cursors_are_refused() {
        let alice = EndUserId::parse("alice").unwrap();
        let me = owners(&alice, None);
        let fingerprint = me.fingerprint();
        let encode = |json: String| URL_SAFE_NO_PAD.encode(json);
        for text in [
            String::new(),
            "!!!".to_owned(),
            encode("[]".into()),
            encode("{}".into()),
            encode(format!(r#"{{"o":"{fingerprint}","x":1}}"#)),
            encode(format!(
                r#"{{"o":"{fingerprint}","m":{{"c":"yesterday","i":"c1"}}}}"#
            )),
            encode(format!(
                r#"{{"o":"{fingerprint}","m":{{"c":"2026-11-26T10:00:00.000Z","i":""}}}}"#
            )),
        ] {
            assert_eq!(Cursor::decode(&text, &me), Err(InvalidCursor), "{text}");
        }
        assert!(Cursor::decode(&encode(format!(r#"{{"o":"{fingerprint}"}}"#)), &me).is_ok());
    }
}

/// Fuzz targets (see [`crate::fuzzing`]): cursors as a caller may send them back.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{fuzz, nasty_string};

    fn owner_ids() -> impl Strategy<Value = (EndUserId, Option<OrganizationId>)> {
        let id = "[a-z0-9|@._ -]{0,12}[a-z0-9]";
        (id, prop::option::of(id)).prop_map(|(user, org)| {
            (
                EndUserId::parse(&user).expect("a plain id"),
                org.map(|o| OrganizationId::parse(&o).expect("a plain id")),
            )
        })
    }

    fn timestamp() -> impl Strategy<Value = String> {
        (
            0..10_000u32,
            1..13u32,
            1..29u32,
            0..24u32,
            0..60u32,
            0..60u32,
            0..1000u32,
        )
            .prop_map(|(y, mo, d, h, mi, s, ms)| {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
            })
    }

    fn position() -> impl Strategy<Value = Option<Position>> {
        prop::option::of((timestamp(), nasty_string(40)).prop_filter_map(
            "a connection id",
            |(created_at, id)| {
                Some(Position {
                    created_at,
                    connection_id: ConnectionId::parse(&id).ok()?,
                })
            },
        ))
    }

    #[test]
    fn a_cursor_decodes_to_itself_for_its_owners_and_for_no_one_else() {
        fuzz(
            "store::Cursor encode / decode (owners)",
            (owner_ids(), owner_ids(), position(), position()),
            |((user, org), (other_user, other_org), mine, team)| {
                let owners = Owners {
                    end_user_id: &user,
                    organization_id: org.as_ref(),
                };
                let cursor = Cursor {
                    owners: owners.fingerprint(),
                    mine,
                    team,
                };
                let text = cursor.encode();
                prop_assert_eq!(Cursor::decode(&text, &owners), Ok(cursor));
                let others = Owners {
                    end_user_id: &other_user,
                    organization_id: other_org.as_ref(),
                };
                if (&user, &org) != (&other_user, &other_org) {
                    prop_assert_eq!(Cursor::decode(&text, &others), Err(InvalidCursor));
                }
                Ok(())
            },
        );
    }

    /// Any text, and a valid cursor with a byte changed or cut: never a panic, and whatever decodes
    /// is sound and encodes back to the same cursor.
    #[test]
    fn any_cursor_text_decodes_only_to_a_sound_cursor() {
        let user = EndUserId::parse("alice").expect("an id");
        let org = OrganizationId::parse("acme").expect("an id");
        let owners = Owners {
            end_user_id: &user,
            organization_id: Some(&org),
        };
        let fingerprint = owners.fingerprint();
        let valid = (position(), position()).prop_map(move |(mine, team)| {
            Cursor {
                owners: fingerprint.clone(),
                mine,
                team,
            }
            .encode()
        });
        let damaged = (
            valid,
            any::<prop::sample::Index>(),
            any::<u8>(),
            any::<bool>(),
        )
            .prop_map(|(text, at, byte, cut)| {
                let mut bytes = text.into_bytes();
                let at = at.index(bytes.len());
                if cut {
                    bytes.truncate(at);
                } else {
                    bytes[at] = byte;
                }
                String::from_utf8_lossy(&bytes).into_owned()
            });
        let text = prop_oneof![
            1 => nasty_string(200),
            1 => "[A-Za-z0-9_-]{0,200}",
            3 => damaged,
        ];
        fuzz("store::Cursor::decode (any text)", text, |text| {
            if let Ok(cursor) = Cursor::decode(&text, &owners) {
                for position in [&cursor.mine, &cursor.team].into_iter().flatten() {
                    prop_assert!(is_timestamp(&position.created_at));
                }
                prop_assert_eq!(
                    Cursor::decode(&cursor.encode(), &owners),
                    Ok(cursor.clone())
                );
                // The text was the canonical spelling: decoding is one to one.
                prop_assert_eq!(cursor.encode(), text);
            }
            Ok(())
        });
    }
}
