//! The dashboard, the panel's home page: the server's health, live tiles (server-sent events,
//! every second), charts for the last hour, day, week or month, and the per-app table. The
//! pieces (tiles, range picker, charts of a series) are shared with each app's Stats tab.

use leptos::prelude::*;
use leptos_router::components::A;
use send_wrapper::SendWrapper;
use shared::chart;
use shared::stats::{AppStatsTable, LiveStats, ServerHealth, StatsSeries};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, MessageEvent};

use crate::api;
use crate::charts::{ChartData, Line, TimeSeriesChart, Unit};
use crate::ui::{remote, ErrorNote, LoadingNote};

/// The ranges offered.
pub const RANGES: [(&str, &str); 4] = [
    ("1h", "Hour"),
    ("24h", "Day"),
    ("7d", "Week"),
    ("30d", "Month"),
];

/// Opens the live stream (`query` is `""` or `?app=ID`) into `live`; closed with the page.
pub fn watch_live(query: &str, live: RwSignal<Option<LiveStats>>) {
    let url = format!("{}/stats/live{query}", api::BASE);
    let Ok(source) = EventSource::new(&url) else {
        return;
    };
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(stats) = e
            .data()
            .as_string()
            .and_then(|text| serde_json::from_str::<LiveStats>(&text).ok())
        {
            live.set(Some(stats));
        }
    });
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    let held = SendWrapper::new((source, on_message));
    on_cleanup(move || {
        let (source, _) = held.take();
        source.close();
    });
}

/// The live tiles.
#[component]
pub fn LiveTiles(live: RwSignal<Option<LiveStats>>) -> impl IntoView {
    let tile = move |id: &'static str,
                     name: &'static str,
                     value: Box<dyn Fn(&LiveStats) -> String + Send + Sync>| {
        view! {
            <div class="tile" id=id>
                <span class="tile-name">{name}</span>
                <strong class="tile-value">
                    {move || live.with(|l| l.as_ref().map_or_else(|| "…".to_owned(), &value))}
                </strong>
            </div>
        }
    };
    view! {
        <section class="tiles" aria-label="Live, averaged over 10 seconds">
            {tile("tile-connections", "Connections", Box::new(|l| l.connections.to_string()))}
            {tile("tile-messages-out", "Deliveries / s", Box::new(|l| chart::count(l.messages_out_per_sec)))}
            {tile("tile-messages-in", "Messages in / s", Box::new(|l| chart::count(l.messages_in_per_sec)))}
            {tile("tile-api", "API requests / s", Box::new(|l| chart::count(l.api_requests_per_sec)))}
            {tile("tile-errors", "Errors / s", Box::new(|l| chart::count(l.errors_per_sec)))}
            {tile("tile-bandwidth", "Bandwidth out / s", Box::new(|l| chart::bytes(l.bytes_out_per_sec)))}
            {tile("tile-channels", "Channels", Box::new(|l| l.channels.to_string()))}
        </section>
    }
}

/// The range picker.
#[component]
pub fn RangePicker(range: RwSignal<&'static str>) -> impl IntoView {
    view! {
        <div class="ranges" role="group" aria-label="Period">
            {RANGES
                .iter()
                .map(|(value, name)| {
                    let value: &'static str = value;
                    view! {
                        <button
                            type="button"
                            class=move || if range.get() == value { "range active" } else { "range secondary" }
                            aria-pressed=move || (range.get() == value).to_string()
                            on:click=move |_| range.set(value)
                        >
                            {*name}
                        </button>
                    }
                })
                .collect_view()}
        </div>
    }
}

#[allow(clippy::cast_precision_loss)]
fn line(
    series: &StatsSeries,
    name: &'static str,
    class: &'static str,
    f: impl Fn(&shared::stats::Counts) -> i64,
) -> Line {
    Line {
        name,
        class,
        points: series
            .points
            .iter()
            .map(|p| (p.t, Some(f(&p.counts) as f64)))
            .collect(),
    }
}

/// The four charts of a series: connections, messages, bandwidth, problems.
#[component]
pub fn SeriesCharts(
    #[prop(into)] prefix: String,
    series: RwSignal<Option<Result<StatsSeries, api::ApiError>>>,
) -> impl IntoView {
    let data = move |pick: fn(&StatsSeries) -> Vec<Line>| {
        Signal::derive(move || match series.get() {
            None => ChartData::Loading,
            Some(Err(e)) => ChartData::Failed(e.message),
            Some(Ok(s)) => ChartData::Lines {
                step: s.step_seconds,
                lines: pick(&s),
            },
        })
    };
    view! {
        <div class="charts">
            <TimeSeriesChart id=format!("{prefix}-connections") title="Connections" unit=Unit::Count
                data=data(|s| vec![line(s, "peak", "c1", |c| c.connections_peak), line(s, "opened", "c2", |c| c.connections_opened)]) />
            <TimeSeriesChart id=format!("{prefix}-messages") title="Messages" unit=Unit::Count
                data=data(|s| vec![line(s, "delivered", "c1", |c| c.messages_out), line(s, "in", "c2", |c| c.messages_in_api + c.messages_in_client)]) />
            <TimeSeriesChart id=format!("{prefix}-bandwidth") title="Bandwidth" unit=Unit::Bytes
                data=data(|s| vec![line(s, "out", "c1", |c| c.ws_bytes_out + c.http_bytes_out), line(s, "in", "c2", |c| c.ws_bytes_in + c.http_bytes_in)]) />
            <TimeSeriesChart id=format!("{prefix}-problems") title="Errors and refusals" unit=Unit::Count
                data=data(|s| vec![line(s, "API errors", "c3", shared::stats::Counts::api_errors), line(s, "refused", "c2", |c| c.rate_limited), line(s, "errors sent", "c1", |c| c.errors_sent)]) />
        </div>
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Connections,
    Messages,
    Bandwidth,
}

fn health_strip(h: &ServerHealth) -> impl IntoView {
    let uptime = {
        let s = h.uptime_secs;
        if s >= 86_400 {
            format!("{}d {}h", s / 86_400, s % 86_400 / 3600)
        } else {
            format!("{}h {}m", s / 3600, s % 3600 / 60)
        }
    };
    let capacity = if h.max_connections > 0 {
        format!("{} / {}", h.connections, h.max_connections)
    } else {
        format!("{} (no limit)", h.connections)
    };
    let files = if h.max_open_files > 0 {
        format!("{} / {}", h.open_files, h.max_open_files)
    } else {
        h.open_files.to_string()
    };
    #[allow(clippy::cast_precision_loss)]
    let rss = chart::bytes(h.rss_bytes as f64);
    let db_class = if h.database == "ok" { "ok" } else { "bad" };
    view! {
        <dl class="health" id="health">
            <div><dt>"Version"</dt><dd>{h.version.clone()}</dd></div>
            <div><dt>"Uptime"</dt><dd>{uptime}</dd></div>
            <div><dt>"CPU"</dt><dd>{format!("{:.1}%", h.cpu_percent)}</dd></div>
            <div><dt>"Memory"</dt><dd>{rss}</dd></div>
            <div><dt>"Open files"</dt><dd>{files}</dd></div>
            <div><dt>"Connections"</dt><dd>{capacity}</dd></div>
            <div><dt>"Database"</dt><dd class=db_class id="health-database">{h.database.clone()}</dd></div>
            <div><dt>"Redis"</dt><dd id="health-redis">{h.redis.clone()}</dd></div>
        </dl>
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let live = RwSignal::new(None::<LiveStats>);
    watch_live("", live);
    let range = RwSignal::new("1h");
    let (health, load_health) = remote::<ServerHealth>(|| "/stats/health".into());
    load_health();
    let refresh = set_interval_with_handle(load_health, std::time::Duration::from_secs(10)).ok();
    let (series, load_series) =
        remote::<StatsSeries>(move || format!("/stats/series?range={}", range.get_untracked()));
    let (table, load_table) =
        remote::<AppStatsTable>(move || format!("/stats/apps?range={}", range.get_untracked()));
    Effect::new(move || {
        range.track();
        series.set(None);
        load_series();
        load_table();
    });
    let chart_refresh = set_interval_with_handle(
        move || {
            load_series();
            load_table();
        },
        std::time::Duration::from_secs(30),
    )
    .ok();
    on_cleanup(move || {
        if let Some(h) = refresh {
            h.clear();
        }
        if let Some(h) = chart_refresh {
            h.clear();
        }
    });
    let sort = RwSignal::new(SortBy::Connections);
    let error = Signal::derive(move || match table.get() {
        Some(Err(e)) => Some(e.message),
        _ => None,
    });
    let rows = move || {
        let Some(Ok(table)) = table.get() else {
            return Vec::new();
        };
        let mut apps = table.apps;
        match sort.get() {
            SortBy::Connections => apps
                .sort_by_key(|a| std::cmp::Reverse((a.connections_now, a.totals.connections_peak))),
            SortBy::Messages => apps.sort_by_key(|a| std::cmp::Reverse(a.pusher_messages)),
            SortBy::Bandwidth => apps.sort_by_key(|a| std::cmp::Reverse(a.bandwidth_bytes)),
        }
        apps
    };
    let header = move |by: SortBy, name: &'static str| {
        view! {
            <th aria-sort=move || if sort.get() == by { "descending" } else { "none" }>
                <button type="button" class="link" on:click=move |_| sort.set(by)>{name}</button>
            </th>
        }
    };
    let export = move || {
        format!(
            "{}/stats/series?range={}&format=csv",
            api::BASE,
            range.get()
        )
    };
    view! {
        <section class="dashboard">
            <h1>"Dashboard"</h1>
            {move || match health.get() {
                None => view! { <LoadingNote what="the server's health" /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">{e.message}</p> }.into_any(),
                Some(Ok(h)) => health_strip(&h).into_any(),
            }}
            <LiveTiles live=live />
            <div class="toolbar">
                <RangePicker range=range />
                <a class="button secondary" id="export-server-csv" href=export download="">"Export CSV"</a>
            </div>
            <SeriesCharts prefix="server" series=series />
            <h2>"Apps"</h2>
            <ErrorNote error=error />
            <div class="table-wrap">
                <table class="apps-stats" id="apps-stats">
                    <thead>
                        <tr>
                            <th>"App"</th>
                            {header(SortBy::Connections, "Connections")}
                            <th class="wide">"Peak"</th>
                            {header(SortBy::Messages, "Messages")}
                            {header(SortBy::Bandwidth, "Bandwidth")}
                            <th class="wide">"API errors"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            let rows = rows();
                            if rows.is_empty() {
                                return view! { <tr><td colspan="6" class="empty">"No apps yet."</td></tr> }.into_any();
                            }
                            rows.into_iter()
                                .map(|a| {
                                    #[allow(clippy::cast_precision_loss)]
                                    let bandwidth = chart::bytes(a.bandwidth_bytes as f64);
                                    #[allow(clippy::cast_precision_loss)]
                                    let messages = chart::count(a.pusher_messages as f64);
                                    view! {
                                        <tr>
                                            <td><A href=format!("/admin/apps/{}/stats", a.app_id)>{a.name.clone()}</A></td>
                                            <td>{a.connections_now}</td>
                                            <td class="wide">{a.totals.connections_peak}</td>
                                            <td>{messages}</td>
                                            <td>{bandwidth}</td>
                                            <td class="wide">{a.totals.api_errors()}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                                .into_any()
                        }}
                    </tbody>
                </table>
            </div>
        </section>
    }
}
