//! Presence membership of one channel: distinct users, each with the sockets it joined from.
//!
//! Plain data, no actors: the channel actor asks it what changed and sends the frames.

use std::collections::HashMap;

use serde_json::Value;

/// One user in a presence channel.
#[derive(Debug)]
struct Member {
    info: Value,
    sockets: usize,
}

/// The members of a presence channel, in the order they first joined.
#[derive(Debug, Default)]
pub struct Presence {
    members: HashMap<String, Member>,
    order: Vec<String>,
}

/// What joining changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// The user's first connection here: the others get `member_added`.
    NewMember,
    /// Another connection of a user already present: nobody is told.
    ExtraConnection,
}

/// Refused because the channel is full of other users.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl Presence {
    /// Adds one connection of `user_id`. A new user is refused once `max_members` are present.
    pub fn join(&mut self, user_id: &str, info: Value, max_members: usize) -> Result<Joined, Full> {
        if let Some(member) = self.members.get_mut(user_id) {
            member.sockets += 1;
            return Ok(Joined::ExtraConnection);
        }
        if self.members.len() >= max_members {
            return Err(Full);
        }
        self.members
            .insert(user_id.to_owned(), Member { info, sockets: 1 });
        self.order.push(user_id.to_owned());
        Ok(Joined::NewMember)
    }

    /// Removes one connection of `user_id`; true when that was the user's last one here.
    pub fn leave(&mut self, user_id: &str) -> bool {
        let Some(member) = self.members.get_mut(user_id) else {
            return false;
        };
        member.sockets -= 1;
        if member.sockets > 0 {
            return false;
        }
        self.members.remove(user_id);
        self.order.retain(|id| id != user_id);
        true
    }

    /// Whether the user has a connection here.
    pub fn contains(&self, user_id: &str) -> bool {
        self.members.contains_key(user_id)
    }

    /// The user's connections here (0 when absent).
    pub fn sockets(&self, user_id: &str) -> usize {
        self.members.get(user_id).map_or(0, |m| m.sockets)
    }

    /// The user's `user_info` (its first connection's), when present.
    pub fn info(&self, user_id: &str) -> Option<Value> {
        self.members.get(user_id).map(|m| m.info.clone())
    }

    /// Distinct users present.
    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// User ids in join order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// `{user_id: user_info}` for the roster sent on subscription.
    pub fn hash(&self) -> Value {
        let map = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.info.clone()))
            .collect::<serde_json::Map<_, _>>();
        Value::Object(map)
    }
}

/// A presence member as announced by the app's auth endpoint (`channel_data`).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberData {
    pub user_id: String,
    pub user_info: Value,
}

/// Why `channel_data` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum MemberDataError {
    NotJson,
    MissingUserId,
    UserIdTooLong(usize),
    UserInfoTooLarge(usize),
}

impl std::fmt::Display for MemberDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson => f.write_str("channel_data is not a JSON object"),
            Self::MissingUserId => {
                f.write_str("channel_data must contain a user_id (string or number)")
            }
            Self::UserIdTooLong(max) => write!(f, "The user_id is longer than {max} characters."),
            Self::UserInfoTooLarge(max) => {
                write!(f, "The maximum size for a channel member is {max} bytes.")
            }
        }
    }
}

/// Parses `channel_data`; a numeric `user_id` is accepted and kept as its decimal string.
pub fn parse_member(
    channel_data: &str,
    max_user_id_len: usize,
    max_info_bytes: usize,
) -> Result<MemberData, MemberDataError> {
    let value: Value = serde_json::from_str(channel_data).map_err(|_| MemberDataError::NotJson)?;
    let Value::Object(mut object) = value else {
        return Err(MemberDataError::NotJson);
    };
    let user_id = match object.get("user_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(MemberDataError::MissingUserId),
    };
    if user_id.chars().count() > max_user_id_len {
        return Err(MemberDataError::UserIdTooLong(max_user_id_len));
    }
    let user_info = object
        .remove("user_info")
        .unwrap_or(Value::Object(serde_json::Map::new()));
    if user_info.to_string().len() > max_info_bytes {
        return Err(MemberDataError::UserInfoTooLarge(max_info_bytes));
    }
    Ok(MemberData { user_id, user_info })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn member_added_and_removed_only_on_first_and_last_connection() {
        let mut p = Presence::default();
        assert_eq!(p.join("1", json!({}), 100), Ok(Joined::NewMember));
        assert_eq!(p.join("1", json!({}), 100), Ok(Joined::ExtraConnection));
        assert_eq!(p.count(), 1);
        assert!(!p.leave("1"));
        assert!(p.leave("1"));
        assert_eq!(p.count(), 0);
        assert!(!p.leave("1"));
    }

    #[test]
    fn full_channel_refuses_new_users_but_not_extra_connections() {
        let mut p = Presence::default();
        p.join("1", json!({}), 1).unwrap();
        assert_eq!(p.join("2", json!({}), 1), Err(Full));
        assert_eq!(p.join("1", json!({}), 1), Ok(Joined::ExtraConnection));
    }

    #[test]
    fn roster_keeps_join_order() {
        let mut p = Presence::default();
        p.join("b", json!({"n": 2}), 10).unwrap();
        p.join("a", json!({"n": 1}), 10).unwrap();
        assert_eq!(p.ids().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(p.hash(), json!({"a": {"n": 1}, "b": {"n": 2}}));
    }

    #[test]
    fn numeric_user_id_becomes_a_string() {
        let m = parse_member(r#"{"user_id":10,"user_info":{"name":"x"}}"#, 128, 1024).unwrap();
        assert_eq!(m.user_id, "10");
        assert_eq!(m.user_info, json!({"name": "x"}));
        let m = parse_member(r#"{"user_id":"u"}"#, 128, 1024).unwrap();
        assert_eq!(m.user_info, json!({}));
    }

    #[test]
    fn member_data_limits() {
        assert_eq!(
            parse_member("nope", 128, 1024),
            Err(MemberDataError::NotJson)
        );
        assert_eq!(
            parse_member("{}", 128, 1024),
            Err(MemberDataError::MissingUserId)
        );
        assert_eq!(
            parse_member(
                &format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129)),
                128,
                1024
            ),
            Err(MemberDataError::UserIdTooLong(128))
        );
        let big = format!(
            r#"{{"user_id":"1","user_info":{{"a":"{}"}}}}"#,
            "x".repeat(2000)
        );
        assert_eq!(
            parse_member(&big, 128, 1024),
            Err(MemberDataError::UserInfoTooLarge(1024))
        );
    }
}
