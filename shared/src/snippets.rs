//! Ready-to-paste client and server settings for an app, filled with the address the admin
//! panel was reached at. Pure text, so that the browser shows exactly what the tests run.

/// Where clients reach this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl ServerAddress {
    /// From the parts of a browser location: `hostname`, `port` (empty for the scheme's
    /// default) and `protocol` (`"https:"` or `"http:"`).
    pub fn from_location(hostname: &str, port: &str, protocol: &str) -> Self {
        let tls = protocol == "https:";
        let port = port.parse().unwrap_or(if tls { 443 } else { 80 });
        Self {
            host: hostname.to_owned(),
            port,
            tls,
        }
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// The credentials a snippet needs.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub app_id: &'a str,
    pub key: &'a str,
    /// Pass a mask instead to show a snippet without the secret.
    pub secret: &'a str,
}

/// One snippet: a stable id (for tests and anchors), a title and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub id: &'static str,
    pub title: &'static str,
    pub language: &'static str,
    pub text: String,
}

/// Every snippet, in the order the panel shows them.
pub fn all(c: Credentials<'_>, at: &ServerAddress) -> Vec<Snippet> {
    vec![
        Snippet {
            id: "pusher-js",
            title: "pusher-js (browser or Node)",
            language: "js",
            text: pusher_js(c, at),
        },
        Snippet {
            id: "laravel-echo",
            title: "Laravel Echo",
            language: "js",
            text: laravel_echo(c, at),
        },
        Snippet {
            id: "laravel-env-pusher",
            title: "Laravel .env (BROADCAST_CONNECTION=pusher)",
            language: "ini",
            text: laravel_env_pusher(c, at),
        },
        Snippet {
            id: "laravel-env-reverb",
            title: "Laravel .env (BROADCAST_CONNECTION=reverb)",
            language: "ini",
            text: laravel_env_reverb(c, at),
        },
        Snippet {
            id: "node",
            title: "Node.js server SDK (pusher)",
            language: "js",
            text: node_sdk(c, at),
        },
        Snippet {
            id: "php",
            title: "PHP server SDK (pusher/pusher-php-server)",
            language: "php",
            text: php_sdk(c, at),
        },
        Snippet {
            id: "python",
            title: "Python server SDK (pusher)",
            language: "python",
            text: python_sdk(c, at),
        },
    ]
}

/// A JavaScript or PHP string literal (JSON quoting is valid in both for these values).
fn quoted(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

pub fn pusher_js(c: Credentials<'_>, at: &ServerAddress) -> String {
    format!(
        r#"import Pusher from "pusher-js";

const pusher = new Pusher({key}, {{
  cluster: "mt1", // required by pusher-js, unused by this server
  wsHost: {host},
  wsPort: {port},
  wssPort: {port},
  forceTLS: {tls},
  enabledTransports: ["ws", "wss"],
}});

const channel = pusher.subscribe("my-channel");
channel.bind("my-event", (data) => console.log(data));"#,
        key = quoted(c.key),
        host = quoted(&at.host),
        port = at.port,
        tls = at.tls,
    )
}

pub fn laravel_echo(c: Credentials<'_>, at: &ServerAddress) -> String {
    format!(
        r#"import Echo from "laravel-echo";
import Pusher from "pusher-js";

window.Pusher = Pusher;

window.Echo = new Echo({{
  broadcaster: "reverb",
  key: {key},
  wsHost: {host},
  wsPort: {port},
  wssPort: {port},
  forceTLS: {tls},
  enabledTransports: ["ws", "wss"],
}});"#,
        key = quoted(c.key),
        host = quoted(&at.host),
        port = at.port,
        tls = at.tls,
    )
}

pub fn laravel_env_pusher(c: Credentials<'_>, at: &ServerAddress) -> String {
    format!(
        r#"BROADCAST_CONNECTION=pusher

PUSHER_APP_ID={id}
PUSHER_APP_KEY={key}
PUSHER_APP_SECRET={secret}
PUSHER_HOST={host}
PUSHER_PORT={port}
PUSHER_SCHEME={scheme}
PUSHER_APP_CLUSTER=mt1

VITE_PUSHER_APP_KEY="${{PUSHER_APP_KEY}}"
VITE_PUSHER_HOST="${{PUSHER_HOST}}"
VITE_PUSHER_PORT="${{PUSHER_PORT}}"
VITE_PUSHER_SCHEME="${{PUSHER_SCHEME}}"
VITE_PUSHER_APP_CLUSTER="${{PUSHER_APP_CLUSTER}}""#,
        id = c.app_id,
        key = c.key,
        secret = c.secret,
        host = at.host,
        port = at.port,
        scheme = at.scheme(),
    )
}

pub fn laravel_env_reverb(c: Credentials<'_>, at: &ServerAddress) -> String {
    format!(
        r#"BROADCAST_CONNECTION=reverb

REVERB_APP_ID={id}
REVERB_APP_KEY={key}
REVERB_APP_SECRET={secret}
REVERB_HOST={host}
REVERB_PORT={port}
REVERB_SCHEME={scheme}

VITE_REVERB_APP_KEY="${{REVERB_APP_KEY}}"
VITE_REVERB_HOST="${{REVERB_HOST}}"
VITE_REVERB_PORT="${{REVERB_PORT}}"
VITE_REVERB_SCHEME="${{REVERB_SCHEME}}""#,
        id = c.app_id,
        key = c.key,
        secret = c.secret,
        host = at.host,
        port = at.port,
        scheme = at.scheme(),
    )
}

pub fn node_sdk(c: Credentials<'_>, at: &ServerAddress) -> String {
    format!(
        r#"const Pusher = require("pusher");

const pusher = new Pusher({{
  appId: {id},
  key: {key},
  secret: {secret},
  host: {host},
  port: {port},
  useTLS: {tls},
}});

pusher.trigger("my-channel", "my-event", {{ message: "hello world" }});"#,
        id = quoted(c.app_id),
        key = quoted(c.key),
        secret = quoted(c.secret),
        host = quoted(&at.host),
        port = quoted(&at.port.to_string()),
        tls = at.tls,
    )
}

pub fn php_sdk(c: Credentials<'_>, at: &ServerAddress) -> String {
    format!(
        r"$pusher = new Pusher\Pusher(
    {key},
    {secret},
    {id},
    [
        'host' => {host},
        'port' => {port},
        'scheme' => '{scheme}',
        'useTLS' => {tls},
    ]
);

$pusher->trigger('my-channel', 'my-event', ['message' => 'hello world']);",
        id = quoted(c.app_id),
        key = quoted(c.key),
        secret = quoted(c.secret),
        host = quoted(&at.host),
        port = at.port,
        scheme = at.scheme(),
        tls = at.tls,
    )
}

pub fn python_sdk(c: Credentials<'_>, at: &ServerAddress) -> String {
    format!(
        r#"import pusher

pusher_client = pusher.Pusher(
    app_id={id},
    key={key},
    secret={secret},
    host={host},
    port={port},
    ssl={ssl},
)

pusher_client.trigger("my-channel", "my-event", {{"message": "hello world"}})"#,
        id = quoted(c.app_id),
        key = quoted(c.key),
        secret = quoted(c.secret),
        host = quoted(&at.host),
        port = at.port,
        ssl = if at.tls { "True" } else { "False" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDS: Credentials<'static> = Credentials {
        app_id: "123",
        key: "k3y",
        secret: "s3cret",
    };

    #[test]
    fn address_from_a_browser_location() {
        let plain = ServerAddress::from_location("127.0.0.1", "6001", "http:");
        assert_eq!(
            (plain.port, plain.tls, plain.scheme()),
            (6001, false, "http")
        );
        let default_tls = ServerAddress::from_location("ws.example.com", "", "https:");
        assert_eq!((default_tls.port, default_tls.tls), (443, true));
        assert_eq!(ServerAddress::from_location("h", "", "http:").port, 80);
    }

    #[test]
    fn snippets_carry_this_server_and_the_credentials() {
        let at = ServerAddress::from_location("ws.example.com", "8443", "https:");
        let snippets = all(CREDS, &at);
        assert_eq!(snippets.len(), 7);
        for s in &snippets {
            assert!(s.text.contains("k3y"), "{} names the key", s.id);
            assert!(s.text.contains("ws.example.com"), "{} names the host", s.id);
            assert!(s.text.contains("8443"), "{} names the port", s.id);
        }
        let server_side = [
            "laravel-env-pusher",
            "laravel-env-reverb",
            "node",
            "php",
            "python",
        ];
        for s in snippets.iter().filter(|s| server_side.contains(&s.id)) {
            assert!(
                s.text.contains("s3cret") && s.text.contains("123"),
                "{}",
                s.id
            );
        }
        for s in snippets.iter().filter(|s| !server_side.contains(&s.id)) {
            assert!(
                !s.text.contains("s3cret"),
                "{} must not leak the secret",
                s.id
            );
        }
        let js = pusher_js(CREDS, &at);
        assert!(js.contains("forceTLS: true") && js.contains("wssPort: 8443"));
        let env = laravel_env_reverb(CREDS, &at);
        assert!(env.contains("REVERB_SCHEME=https") && env.contains("BROADCAST_CONNECTION=reverb"));
        assert!(python_sdk(CREDS, &at).contains("ssl=True"));
    }

    #[test]
    fn values_are_quoted_safely() {
        let at = ServerAddress::from_location("h", "1", "http:");
        let odd = Credentials {
            app_id: "1",
            key: "a\"b",
            secret: "c\\d",
        };
        assert!(pusher_js(odd, &at).contains(r#"new Pusher("a\"b""#));
        assert!(node_sdk(odd, &at).contains(r#"secret: "c\\d""#));
    }
}
