//! The messages nodes send each other over Redis pub/sub, and their encoding.
//!
//! One pub/sub channel per app (`<p>:a:<app>:ev`) carries everything a node must act on for
//! that app's sockets; `<p>:ctl` carries configuration notices. A message is a kind letter and
//! the origin node's id, then the kind's fields, one per line, the last field being free bytes
//! (JSON or a frame exactly as sockets receive it). Channel names, user ids, socket ids and node
//! ids can never contain a newline (`shared::channel` and the id rules refuse them), so no
//! escaping is needed; an event name may, so it travels with its length. The same layout is
//! written by the Lua scripts (`scripts.rs`) that publish presence and count changes inside
//! the state change they report, so a receiver never sees a member event out of order with
//! the state it describes.
//!
//! Text, not JSON: a receiver reads the kind and channel without parsing the payload, and
//! drops a message for a channel it does not host without touching the rest.

use bytes::Bytes;

/// What one bus message asks the receiving node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// An API event (REST, batch, the panel), or a message to a user's `#server-to-user-` channel.
    Event {
        channel: String,
        except: Option<String>,
        event: String,
        data: String,
    },
    /// A client event, as the frame the subscribers receive; `from` never receives it.
    ClientEvent {
        channel: String,
        from: String,
        frame: Bytes,
    },
    /// `terminate_connections` for a user.
    Terminate { user_id: String },
    /// A user's first connection anywhere in a presence channel.
    MemberAdded {
        channel: String,
        user_id: String,
        info: String,
    },
    /// A user's last connection anywhere left a presence channel.
    MemberRemoved { channel: String, user_id: String },
    /// The channel's subscription count changed cluster-wide.
    Count { channel: String, count: u64 },
    /// An app's stored configuration changed (on `<p>:ctl`).
    AppChanged { app_id: String },
    /// A channel (`user_id` None) or member came back within the vacate delay on another
    /// node: `target` holds the delayed `channel_vacated`/`member_removed` webhook and cancels
    /// it (Pusher sends neither when a page reloads, whichever node the reload lands on).
    Reclaimed {
        target: String,
        channel: String,
        user_id: Option<String>,
    },
    /// A node's message to itself (on `<p>:n:<node>:in`): it comes back while the node's
    /// subscriber connection delivers, and its absence shows a connection gone silent.
    Probe { seq: u64 },
}

/// A message and the node that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub origin: String,
    pub message: Message,
}

/// Why a bus message could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed cluster message: {0}")]
pub struct Malformed(&'static str);

impl Envelope {
    pub fn new(origin: &str, message: Message) -> Self {
        Self {
            origin: origin.to_owned(),
            message,
        }
    }

    /// The bytes to PUBLISH.
    pub fn encode(&self) -> Vec<u8> {
        let o = &self.origin;
        match &self.message {
            Message::Event {
                channel,
                except,
                event,
                data,
            } => {
                let except = except.as_deref().unwrap_or("");
                format!(
                    "E\n{o}\n{channel}\n{except}\n{}\n{event}{data}",
                    event.len()
                )
                .into_bytes()
            }
            Message::ClientEvent {
                channel,
                from,
                frame,
            } => {
                let mut out = format!("C\n{o}\n{channel}\n{from}\n").into_bytes();
                out.extend_from_slice(frame);
                out
            }
            Message::Terminate { user_id } => format!("T\n{o}\n{user_id}").into_bytes(),
            Message::MemberAdded {
                channel,
                user_id,
                info,
            } => format!("A\n{o}\n{channel}\n{user_id}\n{info}").into_bytes(),
            Message::MemberRemoved { channel, user_id } => {
                format!("R\n{o}\n{channel}\n{user_id}").into_bytes()
            }
            Message::Count { channel, count } => format!("S\n{o}\n{channel}\n{count}").into_bytes(),
            Message::AppChanged { app_id } => format!("U\n{o}\n{app_id}").into_bytes(),
            Message::Reclaimed {
                target,
                channel,
                user_id,
            } => {
                let user = user_id.as_deref().unwrap_or("");
                format!("V\n{o}\n{target}\n{channel}\n{user}").into_bytes()
            }
            Message::Probe { seq } => format!("P\n{o}\n{seq}").into_bytes(),
        }
    }

    pub fn decode(bytes: &Bytes) -> Result<Self, Malformed> {
        let mut rest = bytes.clone();
        let kind = field(&mut rest)?;
        let origin = text(field(&mut rest)?)?;
        let message = match kind.as_ref() {
            b"E" => {
                let channel = text(field(&mut rest)?)?;
                let except = text(field(&mut rest)?)?;
                let len: usize = text(field(&mut rest)?)?
                    .parse()
                    .map_err(|_| Malformed("event length"))?;
                if len > rest.len() {
                    return Err(Malformed("event length"));
                }
                let event = rest.split_to(len);
                Message::Event {
                    channel,
                    except: (!except.is_empty()).then_some(except),
                    event: text(event)?,
                    data: text(rest)?,
                }
            }
            b"C" => Message::ClientEvent {
                channel: text(field(&mut rest)?)?,
                from: text(field(&mut rest)?)?,
                frame: rest,
            },
            b"T" => Message::Terminate {
                user_id: text(rest)?,
            },
            b"A" => Message::MemberAdded {
                channel: text(field(&mut rest)?)?,
                user_id: text(field(&mut rest)?)?,
                info: text(rest)?,
            },
            b"R" => Message::MemberRemoved {
                channel: text(field(&mut rest)?)?,
                user_id: text(rest)?,
            },
            b"S" => Message::Count {
                channel: text(field(&mut rest)?)?,
                count: text(rest)?.parse().map_err(|_| Malformed("count"))?,
            },
            b"U" => Message::AppChanged {
                app_id: text(rest)?,
            },
            b"V" => {
                let target = text(field(&mut rest)?)?;
                let channel = text(field(&mut rest)?)?;
                let user = text(rest)?;
                Message::Reclaimed {
                    target,
                    channel,
                    user_id: (!user.is_empty()).then_some(user),
                }
            }
            b"P" => Message::Probe {
                seq: text(rest)?.parse().map_err(|_| Malformed("probe"))?,
            },
            _ => return Err(Malformed("kind")),
        };
        Ok(Self { origin, message })
    }

    /// The channel a message is about, read without the payload (receivers drop messages for
    /// channels they do not host before decoding further).
    pub fn channel(&self) -> Option<&str> {
        match &self.message {
            Message::Event { channel, .. }
            | Message::ClientEvent { channel, .. }
            | Message::MemberAdded { channel, .. }
            | Message::MemberRemoved { channel, .. }
            | Message::Count { channel, .. }
            | Message::Reclaimed { channel, .. } => Some(channel),
            Message::Terminate { .. } | Message::AppChanged { .. } | Message::Probe { .. } => None,
        }
    }
}

/// Takes the bytes up to the next newline (and the newline).
fn field(rest: &mut Bytes) -> Result<Bytes, Malformed> {
    let at = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(Malformed("missing field"))?;
    let out = rest.split_to(at);
    let _ = rest.split_to(1);
    Ok(out)
}

fn text(bytes: Bytes) -> Result<String, Malformed> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Malformed("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: Message) {
        let sent = Envelope::new("node-1", message);
        let bytes = Bytes::from(sent.encode());
        assert_eq!(Envelope::decode(&bytes).unwrap(), sent);
    }

    #[test]
    fn every_kind_survives_the_trip() {
        round_trip(Message::Event {
            channel: "private-a".into(),
            except: Some("1.2".into()),
            event: "odd\nname".into(),
            data: "{\"x\":\"line\\nbreak\"}\n".into(),
        });
        round_trip(Message::Event {
            channel: "#server-to-user-7".into(),
            except: None,
            event: "e".into(),
            data: String::new(),
        });
        round_trip(Message::ClientEvent {
            channel: "presence-room".into(),
            from: "1.2".into(),
            frame: Bytes::from_static(b"{\"event\":\"client-x\",\"data\":\"a\\nb\"}"),
        });
        round_trip(Message::Terminate {
            user_id: "u-1".into(),
        });
        round_trip(Message::Probe { seq: 41 });
        round_trip(Message::MemberAdded {
            channel: "presence-room".into(),
            user_id: "7".into(),
            info: "{\"name\":\"Ann\"}".into(),
        });
        round_trip(Message::MemberRemoved {
            channel: "presence-room".into(),
            user_id: "7".into(),
        });
        round_trip(Message::Count {
            channel: "news".into(),
            count: 30,
        });
        round_trip(Message::AppChanged {
            app_id: "app-1".into(),
        });
        round_trip(Message::Reclaimed {
            target: "n2".into(),
            channel: "presence-a".into(),
            user_id: Some("u".into()),
        });
        round_trip(Message::Reclaimed {
            target: "n2".into(),
            channel: "news".into(),
            user_id: None,
        });
    }

    /// The Lua scripts write member and count messages by hand: this is their exact layout.
    #[test]
    fn the_layout_is_what_the_scripts_write() {
        let added = Envelope::new(
            "n1",
            Message::MemberAdded {
                channel: "presence-a".into(),
                user_id: "u".into(),
                info: "{}".into(),
            },
        );
        assert_eq!(added.encode(), b"A\nn1\npresence-a\nu\n{}");
        let count = Envelope::new(
            "n1",
            Message::Count {
                channel: "a".into(),
                count: 3,
            },
        );
        assert_eq!(count.encode(), b"S\nn1\na\n3");
    }

    #[test]
    fn garbage_is_refused_not_guessed() {
        for bad in [
            &b""[..],
            b"X\nn1\nc",
            b"E\nn1\nc\n\n99\nshort",
            b"S\nn1\nc\nmany",
            b"A\nn1\nonly-channel",
        ] {
            assert!(
                Envelope::decode(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
