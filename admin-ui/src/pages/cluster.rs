//! The cluster's nodes: id, address, connections, last heartbeat and state, refreshed every
//! few seconds. On a single node it says that cluster mode is off and how to turn it on.

use leptos::prelude::*;
use shared::admin::{ClusterNode, ClusterStatus};

use crate::api::{self, ApiError};
use crate::ui::{clock, datetime, LoadingNote};

/// How often the list is read again (a node heartbeats every 2 s by default).
const REFRESH_MS: u64 = 3000;

#[component]
pub fn ClusterPage() -> impl IntoView {
    let loaded = RwSignal::new(None::<Result<ClusterStatus, ApiError>>);
    let load = move || {
        leptos::task::spawn_local(async move {
            loaded.set(Some(api::get::<ClusterStatus>("/cluster").await));
        });
    };
    load();
    let timer = set_interval_with_handle(load, std::time::Duration::from_millis(REFRESH_MS)).ok();
    on_cleanup(move || {
        if let Some(timer) = timer {
            timer.clear();
        }
    });
    view! {
        <section>
            <h1>"Cluster"</h1>
            {move || match loaded.get() {
                None => view! { <LoadingNote what="the cluster" /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">"Could not load the cluster: " {e.message}</p> }.into_any(),
                Some(Ok(status)) if !status.enabled => view! {
                    <p class="empty">"Cluster mode is off: this server is a single node. Set "
                        <code>"cluster_redis_url"</code>" on several nodes sharing one database to run a cluster."</p>
                }.into_any(),
                Some(Ok(status)) => {
                    let state = status.state.clone().unwrap_or_default();
                    let me = status.node_id.clone().unwrap_or_default();
                    let total: u64 = status.nodes.iter().filter(|n| n.state == "alive").map(|n| n.connections).sum();
                    view! {
                        <p class="lede">
                            {format!("{} nodes, {total} connections. This page is served by node {me}, whose link to Redis is ", status.nodes.len())}
                            <strong class=format!("cluster-{state}")>{state.clone()}</strong>"."
                        </p>
                        <div class="table-wrap">
                            <table class="nodes">
                                <thead>
                                    <tr>
                                        <th scope="col">"Node"</th>
                                        <th scope="col">"Address"</th>
                                        <th scope="col">"Connections"</th>
                                        <th scope="col">"Last heartbeat"</th>
                                        <th scope="col">"Started"</th>
                                        <th scope="col">"Version"</th>
                                        <th scope="col">"State"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {status.nodes.into_iter().map(|n| view! { <Row node=n me=me.clone() /> }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any()
                }
            }}
        </section>
    }
}

#[component]
fn Row(node: ClusterNode, me: String) -> impl IntoView {
    let this = node.id == me;
    let beat = if node.last_heartbeat_ms == 0 {
        "—".to_owned()
    } else {
        clock(i64::try_from(node.last_heartbeat_ms).unwrap_or(i64::MAX))
    };
    let started = datetime(i64::try_from(node.started_ms / 1000).unwrap_or(i64::MAX));
    view! {
        <tr class=("this-node", this)>
            <td><code>{node.id}</code>{this.then_some(" (this node)")}</td>
            <td>{node.address}</td>
            <td>{node.connections}</td>
            <td>{beat}</td>
            <td>{started}</td>
            <td>{node.version}</td>
            <td>{node.state}</td>
        </tr>
    }
}
