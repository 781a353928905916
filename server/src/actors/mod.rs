//! The actor system: `AppRegistry` → `AppSupervisor` (one per app) → `ChannelActor` (one per
//! occupied channel), and one `Session` per WebSocket. See `ARCHITECTURE.md` for the flows.

pub mod channel;
pub mod directory;
pub mod messages;
pub mod outbox;
pub mod registry;
pub mod session;
pub mod supervisor;
pub mod wakeup;
