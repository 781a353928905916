//! The load generator's own logic, kept apart from the network code so that it can be tested:
//! Pusher REST request signing, latency bookkeeping, and reading a server process's memory and
//! CPU time from `/proc`.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Signs a Pusher REST request (protocol §5.2): the query string to append, `auth_signature`
/// included. `params` are the request's own query parameters (without the `auth_*` ones).
pub fn signed_query(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    key: &str,
    secret: &str,
    timestamp: u64,
) -> String {
    let mut query: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    query.insert("auth_key".into(), key.into());
    query.insert("auth_timestamp".into(), timestamp.to_string());
    query.insert("auth_version".into(), "1.0".into());
    if !body.is_empty() {
        query.insert("body_md5".into(), hex::encode(Md5::digest(body)));
    }
    let joined = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("{method}\n{path}\n{joined}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!("{joined}&auth_signature={signature}")
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Records latencies (nanoseconds, up to one minute, 3 significant digits).
pub struct Latencies(hdrhistogram::Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(
            hdrhistogram::Histogram::new_with_bounds(1_000, 60_000_000_000, 3)
                .expect("valid histogram bounds"),
        )
    }
}

impl Latencies {
    /// Records one latency; values outside the range are clamped to it.
    pub fn record(&mut self, nanos: u64) {
        self.0.saturating_record(nanos.max(1_000));
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn percentiles(&self) -> Percentiles {
        let us = |q: f64| self.0.value_at_quantile(q) as f64 / 1_000.0;
        Percentiles {
            count: self.0.len(),
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            max: self.0.max() as f64 / 1_000.0,
        }
    }
}

/// Resident memory of a process, in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time a process has used (user + system), in microseconds, from `/proc/PID/stat`.
pub fn cpu_micros(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_micros(&stat)
}

/// CPU time the calling thread has used (user + system), in microseconds.
pub fn thread_cpu_micros() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    parse_cpu_micros(&stat)
}

/// `/proc` counts in `USER_HZ` ticks, which Linux fixes at 100 per second for user space.
const MICROS_PER_TICK: u64 = 10_000;

fn parse_cpu_micros(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * MICROS_PER_TICK)
}

/// The send time a `bench` event carries (`"t"` in its data), read without parsing the frame:
/// `Some` only for a frame in the form Pusher servers send, `{"event":"bench",...,"data":
/// "{\"t\":NANOS,...}"}`. Anything else gives `None` and is left to a full JSON parse.
pub fn bench_send_time(frame: &[u8]) -> Option<u64> {
    const EVENT: &[u8] = br#""event":"bench""#;
    const TIME: &[u8] = br#""data":"{\"t\":"#;
    let find = |needle: &[u8]| frame.windows(needle.len()).position(|w| w == needle);
    find(EVENT)?;
    let digits = &frame[find(TIME)? + TIME.len()..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    if end == 0 || digits[end] != b',' && digits[end] != b'}' {
        return None;
    }
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// Nanoseconds since the Unix epoch (the send time that fan-out messages carry).
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_example_from_the_pusher_documentation() {
        // https://pusher.com/docs/channels/library_auth_reference/rest-api/#worked-authentication-example
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let query = signed_query(
            "POST",
            "/apps/3/events",
            &[],
            body,
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            1_353_088_179,
        );
        assert!(
            query.contains("body_md5=ec365a775a4cd0599faeb73354201b6f"),
            "{query}"
        );
        assert!(
            query.ends_with(
                "auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
            ),
            "{query}"
        );
    }

    #[test]
    fn get_requests_have_no_body_md5_and_sorted_params() {
        let query = signed_query(
            "GET",
            "/apps/1/channels",
            &[("info", "user_count"), ("filter_by_prefix", "presence-")],
            b"",
            "k",
            "s",
            1,
        );
        assert!(!query.contains("body_md5"));
        assert!(query.starts_with("auth_key=k&auth_timestamp=1&auth_version=1.0&filter_by_prefix=presence-&info=user_count&auth_signature="));
    }

    #[test]
    fn latency_percentiles() {
        let mut l = Latencies::default();
        for ms in 1..=100u64 {
            l.record(ms * 1_000_000);
        }
        let p = l.percentiles();
        assert_eq!(p.count, 100);
        let near = |value: f64, expected_ms: f64| {
            (value / 1_000.0 - expected_ms).abs() <= expected_ms * 0.002 + 0.01
        };
        assert!(near(p.p50, 50.0), "{p:?}");
        assert!(near(p.p90, 90.0), "{p:?}");
        assert!(near(p.p99, 99.0), "{p:?}");
        assert!(near(p.max, 100.0), "{p:?}");
        // Out-of-range values are clamped, not lost.
        l.record(0);
        l.record(u64::MAX);
        assert_eq!(l.count(), 102);
    }

    #[test]
    fn reads_the_send_time_of_bench_events_without_parsing() {
        let frame = br#"{"event":"bench","channel":"fanout-3","data":"{\"t\":1763800000123456789,\"pad\":\"xx\"}"}"#;
        assert_eq!(bench_send_time(frame), Some(1_763_800_000_123_456_789));
        // Key order is not fixed by the protocol.
        let frame = br#"{"channel":"c","data":"{\"t\":42}","event":"bench"}"#;
        assert_eq!(bench_send_time(frame), Some(42));
        // Other events, other layouts and malformed times are left to the full parse.
        assert_eq!(
            bench_send_time(br#"{"event":"pusher:ping","data":"{}"}"#),
            None
        );
        assert_eq!(
            bench_send_time(br#"{"event": "bench", "data": "{\"t\":1}"}"#),
            None
        );
        assert_eq!(
            bench_send_time(br#"{"event":"bench","data":"{\"t\":}"}"#),
            None
        );
        assert_eq!(
            bench_send_time(br#"{"event":"bench","data":"{\"t\":12x}"}"#),
            None
        );
        assert_eq!(
            bench_send_time(br#"{"event":"bench","data":"{\"t\":1"#),
            None
        );
    }

    #[test]
    fn reads_proc_formats() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        let stat = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1";
        assert_eq!(parse_cpu_micros(stat), Some(300 * MICROS_PER_TICK));
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(cpu_micros(std::process::id()).is_some());
        assert!(thread_cpu_micros().is_some());
    }
}
