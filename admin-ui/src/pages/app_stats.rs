//! An app's Stats tab: its live tiles, the same charts as the dashboard, its peak and busiest
//! hours, CSV and JSON exports (series and this month's usage report) and its recent errors.

use leptos::prelude::*;
use shared::admin::App;
use shared::stats::{LiveStats, RecentError, StatsSeries, StatsSummary};

use super::dashboard::{watch_live, LiveTiles, RangePicker, SeriesCharts};
use crate::api;
use crate::ui::{clock, maybe_datetime, remote};

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// This month as `YYYY-MM` (UTC).
fn this_month() -> String {
    let now = js_sys::Date::new_0();
    format!(
        "{:04}-{:02}",
        now.get_utc_full_year(),
        now.get_utc_month() + 1
    )
}

#[component]
pub fn StatsTab(app: Signal<App>) -> impl IntoView {
    let id = app.get_untracked().id;
    let live = RwSignal::new(None::<LiveStats>);
    watch_live(&format!("?app={id}"), live);
    let range = RwSignal::new("1h");
    let base = format!("/apps/{id}/stats");
    let (series, load_series) = {
        let base = base.clone();
        let path = StoredValue::new(base);
        remote::<StatsSeries>(move || {
            format!(
                "{}/series?range={}",
                path.get_value(),
                range.get_untracked()
            )
        })
    };
    let (summary, load_summary) = {
        let path = StoredValue::new(base.clone());
        remote::<StatsSummary>(move || {
            format!(
                "{}/summary?range={}",
                path.get_value(),
                range.get_untracked()
            )
        })
    };
    let (errors, load_errors) = {
        let path = StoredValue::new(base.clone());
        remote::<Vec<RecentError>>(move || format!("{}/errors", path.get_value()))
    };
    Effect::new(move || {
        range.track();
        series.set(None);
        load_series();
        load_summary();
    });
    load_errors();
    let timer = set_interval_with_handle(
        move || {
            load_errors();
            load_series();
            load_summary();
        },
        std::time::Duration::from_secs(15),
    )
    .ok();
    on_cleanup(move || {
        if let Some(t) = timer {
            t.clear();
        }
    });
    let csv = {
        let id = id.clone();
        move || {
            format!(
                "{}/apps/{id}/stats/series?range={}&format=csv",
                api::BASE,
                range.get()
            )
        }
    };
    let json = {
        let id = id.clone();
        move || format!("{}/apps/{id}/stats/series?range={}", api::BASE, range.get())
    };
    let usage = format!(
        "{}/apps/{id}/stats/usage/{}?format=csv",
        api::BASE,
        this_month()
    );
    let peaks = move || {
        match summary.get() {
        None => view! { <p class="loading" role="status">"Loading…"</p> }.into_any(),
        Some(Err(e)) => view! { <p class="error" role="alert">{e.message}</p> }.into_any(),
        Some(Ok(s)) => view! {
            <dl class="peaks" id="app-peaks">
                <div><dt>"Highest concurrent connections"</dt>
                    <dd>{s.totals.connections_peak} " " <small>{maybe_datetime(s.connections_peak_at)}</small></dd></div>
                <div><dt>"Messages (as Pusher counts)"</dt><dd>{s.pusher_messages}</dd></div>
                <div><dt>"Busiest hour of the day (UTC)"</dt>
                    <dd>{s.busiest_hour_of_day.map_or_else(|| "—".to_owned(), |h| format!("{h:02}:00"))}</dd></div>
                <div><dt>"Busiest hour of the week (UTC)"</dt>
                    <dd>{s.busiest_hour_of_week.map_or_else(|| "—".to_owned(), |w| format!("{} {:02}:00", WEEKDAYS[usize::from(w.weekday) % 7], w.hour))}</dd></div>
            </dl>
        }
        .into_any(),
    }
    };
    view! {
        <section class="app-stats">
            <LiveTiles live=live />
            <div class="toolbar">
                <RangePicker range=range />
                <a class="button secondary" id="export-csv" href=csv download="">"Export CSV"</a>
                <a class="button secondary" id="export-json" href=json download="">"Export JSON"</a>
                <a class="button secondary" id="export-usage" href=usage download="">"This month's usage (CSV)"</a>
            </div>
            {peaks}
            <SeriesCharts prefix="app" series=series />
            <h2>"Recent errors"</h2>
            <p class="hint">"The last 50 errors sent to this app's clients and operations its limits refused (on every node, in a cluster)."</p>
            <ul class="recent-errors" id="recent-errors">
                {move || match errors.get() {
                    None => view! { <li class="loading">"Loading…"</li> }.into_any(),
                    Some(Err(e)) => view! { <li class="error">{e.message}</li> }.into_any(),
                    Some(Ok(list)) if list.is_empty() => view! { <li class="empty">"No errors. "</li> }.into_any(),
                    Some(Ok(list)) => list
                        .into_iter()
                        .map(|e| {
                            let code = e.code.map(|c| format!(" ({c})")).unwrap_or_default();
                            let channel = e.channel.map(|c| format!(" on {c}")).unwrap_or_default();
                            // In a cluster the list is every node's: say whose client it was.
                            let node = e.node.map(|n| format!(" (node {n})")).unwrap_or_default();
                            let class = format!("k-{}", e.kind);
                            view! {
                                <li class=class>
                                    <time>{clock(e.at_ms)}</time> " "
                                    <strong>{e.kind}</strong> {code} {channel} ": " {e.message}
                                    <span class="node">{node}</span>
                                </li>
                            }
                        })
                        .collect_view()
                        .into_any(),
                }}
            </ul>
        </section>
    }
}
