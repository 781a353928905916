//! What the statistics do in a cluster, once a second, beside the sampler:
//!
//! - **Gauges**: peaks and minimums are not sums (two nodes peaking at different seconds), so
//!   the nodes leave them out of their rows and one node at a time (a lease in Redis) writes the
//!   cluster's own, which the cluster scripts record at every change of a cluster total
//!   ([`crate::cluster::scripts`]), as the rows of node `*`. Every round queues the current
//!   minute's values so far (a peak only grows and a minimum only falls as the minute goes on,
//!   and rows merge by highest and lowest, so rewriting is harmless) and, once, the final values
//!   of the minute that ended.
//! - **Recent errors**: this node's new ones go to the app's shared list in Redis.
//! - **Live numbers**: this node shares its own (3 s in Redis) and reads the other live nodes',
//!   so the dashboard's tiles on any node are the cluster's: connections and rates add up (each
//!   socket and each request is one node's), occupied channels come from the cluster's count
//!   (a channel open on two nodes is one channel). While Redis is unreachable the tiles show
//!   this node's own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::stats::{Counts, LiveStats, MINUTE};

use super::{Live, Stats, CLUSTER_NODE, GAUGES_EVERY};
use crate::actors::directory::Directory;
use crate::cluster::{Cluster, MinuteGauges, SharedLive};
use crate::db::stats::StatKey;

/// How long a node's live numbers stay in Redis: a few missed seconds, then it is not counted.
const LIVE_KEPT: Duration = Duration::from_secs(3);

/// A node's live numbers as shared: the server's and each app's with anything in them.
#[derive(Debug, Serialize, Deserialize)]
struct Shared {
    server: LiveStats,
    apps: Vec<LiveStats>,
}

/// Runs for as long as the server (aborted with the sampler).
pub(super) async fn run(stats: Stats, directory: Directory, cluster: Cluster) {
    let every = GAUGES_EVERY.min(stats.config().flush_every);
    let mut tick = actix_web::rt::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut finished = i64::MIN;
    let mut gauges_at = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let local = stats.0.local.borrow().clone();
        if !cluster.is_healthy() {
            stats.0.live.send_replace(local);
            continue;
        }
        let live = share_live(&cluster, &local).await;
        stats.0.live.send_replace(live.unwrap_or(local));
        stats.share_errors(&cluster).await;
        if tokio::time::Instant::now() < gauges_at {
            continue;
        }
        gauges_at = tokio::time::Instant::now() + every;
        let apps: Vec<String> = directory
            .all()
            .iter()
            .map(|h| h.config.load().id.clone())
            .collect();
        let Ok(Some(minutes)) = cluster.stats_gauges(&apps, every * 3).await else {
            continue;
        };
        let mut rows = Vec::new();
        for (i, minute) in minutes.iter().enumerate() {
            let ended = i + 1 < minutes.len();
            if ended && minute.minute <= finished {
                continue;
            }
            if ended {
                finished = minute.minute;
            }
            rows.extend(gauge_rows(minute));
        }
        stats.queue_rows(rows);
    }
}

/// Shares this node's live numbers and returns the cluster's (`None` when Redis failed).
async fn share_live(cluster: &Cluster, local: &Live) -> Option<Arc<Live>> {
    let mine = Shared {
        server: local.server.clone(),
        apps: local
            .apps
            .values()
            .filter(|a| !is_idle(a))
            .cloned()
            .collect(),
    };
    let json = serde_json::to_string(&mine).ok()?;
    let apps: Vec<String> = local.apps.keys().cloned().collect();
    let shared = cluster.share_live(&json, LIVE_KEPT, &apps).await.ok()?;
    Some(Arc::new(merge_live(local, &shared)))
}

fn is_idle(a: &LiveStats) -> bool {
    a.connections == 0
        && a.messages_in_per_sec == 0.0
        && a.messages_out_per_sec == 0.0
        && a.api_requests_per_sec == 0.0
        && a.errors_per_sec == 0.0
        && a.bytes_in_per_sec == 0.0
        && a.bytes_out_per_sec == 0.0
}

/// Adds `b`'s connections and rates into `a` (channels are the cluster's, set apart).
fn add(a: &mut LiveStats, b: &LiveStats) {
    a.connections += b.connections;
    a.messages_in_per_sec += b.messages_in_per_sec;
    a.messages_out_per_sec += b.messages_out_per_sec;
    a.api_requests_per_sec += b.api_requests_per_sec;
    a.errors_per_sec += b.errors_per_sec;
    a.bytes_in_per_sec += b.bytes_in_per_sec;
    a.bytes_out_per_sec += b.bytes_out_per_sec;
}

/// This node's live numbers plus the other nodes', with the cluster's channel counts. Apps
/// only other nodes know of (created there within the second) are left out.
fn merge_live(local: &Live, shared: &SharedLive) -> Live {
    let mut live = local.clone();
    for json in &shared.others {
        let Ok(other) = serde_json::from_str::<Shared>(json) else {
            continue;
        };
        add(&mut live.server, &other.server);
        for app in &other.apps {
            if let Some(mine) = live.apps.get_mut(&app.app_id) {
                add(mine, app);
            }
        }
    }
    live.server.channels = shared.channels;
    let channels: HashMap<&str, i64> = shared
        .app_channels
        .iter()
        .map(|(id, n)| (id.as_str(), *n))
        .collect();
    for (id, app) in &mut live.apps {
        app.channels = channels.get(id.as_str()).copied().unwrap_or(app.channels);
    }
    live
}

/// The rows of node `*` for one minute of the cluster's gauges (only where something was open).
fn gauge_rows(minute: &MinuteGauges) -> Vec<(StatKey, Counts)> {
    minute
        .apps
        .iter()
        .filter(|(_, g)| g.connections_peak > 0 || g.channels_peak > 0)
        .map(|(app_id, g)| {
            let key = StatKey {
                app_id: app_id.clone(),
                resolution: MINUTE,
                bucket_start: minute.minute,
                node: CLUSTER_NODE.to_owned(),
            };
            // One sample, so that the minimum counts when minutes merge (see `Merge::Min`).
            let counts = Counts {
                samples: 1,
                connections_peak: g.connections_peak,
                connections_min: g.connections_min,
                channels_peak: g.channels_peak,
                ..Counts::default()
            };
            (key, counts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Gauges;

    fn stats(app_id: &str, connections: i64, channels: i64, out: f64) -> LiveStats {
        LiveStats {
            app_id: app_id.into(),
            connections,
            channels,
            messages_out_per_sec: out,
            ..LiveStats::default()
        }
    }

    #[test]
    fn live_numbers_add_up_and_channels_are_the_clusters() {
        let local = Live {
            server: stats("*", 3, 2, 10.0),
            apps: HashMap::from([("a".to_owned(), stats("a", 3, 2, 10.0))]),
        };
        let other = Shared {
            server: stats("*", 4, 2, 5.5),
            apps: vec![stats("a", 4, 2, 5.5), stats("unknown", 1, 1, 1.0)],
        };
        let shared = SharedLive {
            others: vec![serde_json::to_string(&other).unwrap(), "not json".into()],
            channels: 3,
            app_channels: vec![("a".into(), 3)],
        };
        let live = merge_live(&local, &shared);
        assert_eq!(
            (live.server.connections, live.server.channels),
            (7, 3),
            "channels shared by both nodes count once"
        );
        assert!((live.server.messages_out_per_sec - 15.5).abs() < 1e-9);
        assert_eq!(
            (live.apps["a"].connections, live.apps["a"].channels),
            (7, 3)
        );
        assert_eq!(live.apps.len(), 1);
    }

    #[test]
    fn gauge_rows_are_node_stars_with_one_sample() {
        let minute = MinuteGauges {
            minute: 120,
            apps: vec![
                (
                    "*".into(),
                    Gauges {
                        connections_peak: 6,
                        connections_min: 1,
                        channels_peak: 4,
                    },
                ),
                ("idle".into(), Gauges::default()),
            ],
        };
        let rows = gauge_rows(&minute);
        assert_eq!(rows.len(), 1);
        let (key, counts) = &rows[0];
        assert_eq!(
            (key.node.as_str(), key.bucket_start, key.app_id.as_str()),
            ("*", 120, "*")
        );
        assert_eq!(
            (
                counts.samples,
                counts.connections_peak,
                counts.connections_min,
                counts.channels_peak
            ),
            (1, 6, 1, 4)
        );
    }
}
