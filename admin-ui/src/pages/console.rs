//! The debug console: a live stream of one app's activity (server-sent events from
//! `/admin/api/apps/{id}/debug`) with filters, and the event creator that sends an event to a
//! channel from the panel.
//!
//! The stream is opened when the page mounts and closed when it unmounts, so the server only
//! records activity while someone is looking.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use serde_json::Value;
use shared::admin::{App, DebugEvent, DebugKind, TriggerEventRequest, TriggerEventResult};
use shared::ChannelName;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, MessageEvent};

use crate::api;
use crate::ui::{clock, ErrorNote};

/// Entries kept in memory; older ones fall off the end.
const MAX_ENTRIES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Connecting,
    Live,
    Reconnecting,
    Stopped,
}

impl Feed {
    fn describe(self) -> &'static str {
        match self {
            Feed::Connecting => "Connecting…",
            Feed::Live => "Live: showing activity as it happens",
            Feed::Reconnecting => "Connection to the server lost; reconnecting…",
            Feed::Stopped => {
                "The console stopped (the session may have expired). Reload the page to try again."
            }
        }
    }
}

fn kind_class(kind: DebugKind) -> &'static str {
    match kind {
        DebugKind::Connection | DebugKind::Subscribed => "k-open",
        DebugKind::Disconnection | DebugKind::Unsubscribed => "k-close",
        DebugKind::ApiMessage | DebugKind::ClientEvent => "k-event",
        DebugKind::Error | DebugKind::RateLimited => "k-error",
        DebugKind::Notice => "k-notice",
    }
}

fn kind_value(kind: DebugKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Opens the app's stream, feeding `entries`, and closes it when the page goes away.
fn watch(app_id: &str, entries: RwSignal<Vec<(u64, DebugEvent)>>, feed: RwSignal<Feed>) {
    let url = format!("{}/apps/{app_id}/debug", api::BASE);
    let Ok(source) = EventSource::new(&url) else {
        feed.set(Feed::Stopped);
        return;
    };
    let mut next = 0u64;
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        feed.set(Feed::Live);
        let Some(event) = e
            .data()
            .as_string()
            .and_then(|text| serde_json::from_str::<DebugEvent>(&text).ok())
        else {
            return;
        };
        next += 1;
        let seq = next;
        entries.update(|list| {
            list.insert(0, (seq, event));
            list.truncate(MAX_ENTRIES);
        });
    });
    let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| feed.set(Feed::Live));
    let watched = source.clone();
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        // The browser retries on its own unless the server refused the stream outright.
        feed.set(if watched.ready_state() == EventSource::CLOSED {
            Feed::Stopped
        } else {
            Feed::Reconnecting
        });
    });
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let held = SendWrapper::new((source, on_message, on_open, on_error));
    on_cleanup(move || {
        let (source, ..) = held.take();
        source.close();
    });
}

#[component]
pub fn Console(app: Signal<App>) -> impl IntoView {
    let entries = RwSignal::new(Vec::<(u64, DebugEvent)>::new());
    let feed = RwSignal::new(Feed::Connecting);
    watch(&app.get_untracked().id, entries, feed);

    let channel_filter = RwSignal::new(String::new());
    let event_filter = RwSignal::new(String::new());
    let kind_filter = RwSignal::new(String::new());
    let visible = move || {
        let channel = channel_filter.get().trim().to_lowercase();
        let event = event_filter.get().trim().to_lowercase();
        let kind = kind_filter.get();
        entries.with(|list| {
            list.iter()
                .filter(|(_, e)| {
                    (channel.is_empty()
                        || e.channel
                            .as_deref()
                            .is_some_and(|c| c.to_lowercase().contains(&channel)))
                        && (event.is_empty()
                            || e.event
                                .as_deref()
                                .is_some_and(|n| n.to_lowercase().contains(&event)))
                        && (kind.is_empty() || kind_value(e.kind) == kind)
                })
                .cloned()
                .collect::<Vec<_>>()
        })
    };

    view! {
        <div class="console">
            <div class="card">
                <h2>"Debug console"</h2>
                <p id="console-status" class="feed" class:live=move || feed.get() == Feed::Live role="status">
                    {move || feed.get().describe()}
                </p>
                <div class="filters" role="search">
                    <div class="field">
                        <label for="filter-channel">"Channel"</label>
                        <input id="filter-channel" placeholder="any channel" bind:value=channel_filter />
                    </div>
                    <div class="field">
                        <label for="filter-event">"Event"</label>
                        <input id="filter-event" placeholder="any event" bind:value=event_filter />
                    </div>
                    <div class="field">
                        <label for="filter-kind">"Type"</label>
                        <select id="filter-kind" bind:value=kind_filter>
                            <option value="">"Everything"</option>
                            {DebugKind::ALL.iter().map(|k| view! {
                                <option value=kind_value(*k)>{k.label()}</option>
                            }).collect_view()}
                        </select>
                    </div>
                    <button type="button" class="secondary" on:click=move |_| entries.set(Vec::new())>"Clear"</button>
                </div>
                <div class="table-wrap">
                    <table class="log" aria-live="off">
                        <thead>
                            <tr>
                                <th scope="col">"Time"</th>
                                <th scope="col">"Type"</th>
                                <th scope="col">"Socket"</th>
                                <th scope="col">"Channel"</th>
                                <th scope="col">"Event"</th>
                                <th scope="col">"Details"</th>
                            </tr>
                        </thead>
                        <tbody id="console-entries">
                            <For each=visible key=|(seq, _)| *seq children=|(_, e)| view! { <Entry event=e /> } />
                        </tbody>
                    </table>
                </div>
                {move || entries.with(Vec::is_empty).then(|| view! {
                    <p class="empty">"Nothing yet. Connect a client or send an event below, and it shows up here."</p>
                })}
            </div>
            <EventCreator app=app />
        </div>
    }
}

#[component]
fn Entry(event: DebugEvent) -> impl IntoView {
    let details = match (&event.data, event.code, &event.message) {
        (Some(data), _, message) => {
            let mut text = data.clone();
            if let Some(m) = message {
                text = format!("{text}  ({m})");
            }
            text
        }
        (None, Some(code), Some(message)) if !message.starts_with(&code.to_string()) => {
            format!("{code}: {message}")
        }
        (None, Some(code), None) => code.to_string(),
        (None, _, Some(message)) => message.clone(),
        (None, None, None) => String::new(),
    };
    view! {
        <tr class=kind_class(event.kind) data-kind=kind_value(event.kind)>
            <td class="time">{clock(event.at_ms)}</td>
            <td>{event.kind.label()}</td>
            <td>{event.socket_id.map(|id| view! { <code>{id}</code> })}</td>
            <td>{event.channel.unwrap_or_default()}</td>
            <td>{event.event.unwrap_or_default()}</td>
            <td class="details">{(!details.is_empty()).then(|| view! { <code>{details}</code> })}</td>
        </tr>
    }
}

#[component]
fn EventCreator(app: Signal<App>) -> impl IntoView {
    let channel = RwSignal::new("my-channel".to_owned());
    let event = RwSignal::new("my-event".to_owned());
    let data = RwSignal::new("{\"message\": \"hello world\"}".to_owned());
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        result.set(None);
        let limits = app.with_untracked(|a| a.limits.clone());
        let (name, event_name, payload) = (
            channel.get_untracked().trim().to_owned(),
            event.get_untracked().trim().to_owned(),
            data.get_untracked().trim().to_owned(),
        );
        let problem = if let Err(e) =
            ChannelName::parse(&name, limits.max_channel_name_length as usize)
        {
            Some(e.to_string())
        } else if event_name.is_empty() {
            Some("Name the event, for example my-event.".to_owned())
        } else if event_name.len() > limits.max_event_name_length as usize {
            Some(format!(
                "The event name can have at most {} characters.",
                limits.max_event_name_length
            ))
        } else if serde_json::from_str::<Value>(&payload).is_err() {
            Some("The data must be valid JSON, for example {\"message\": \"hello\"}.".to_owned())
        } else if payload.len() > limits.max_event_payload_bytes as usize {
            Some(format!(
                "The data can have at most {} bytes.",
                limits.max_event_payload_bytes
            ))
        } else {
            None
        };
        error.set(problem.clone());
        if problem.is_some() {
            return;
        }
        busy.set(true);
        let id = app.get_untracked().id;
        let request = TriggerEventRequest {
            channel: name,
            event: event_name,
            data: payload,
        };
        leptos::task::spawn_local(async move {
            match api::post::<_, TriggerEventResult>(&format!("/apps/{id}/events"), &request).await
            {
                Ok(r) => result.set(Some(match r.subscription_count {
                    0 => "Sent. Nobody is subscribed to that channel right now.".to_owned(),
                    1 => "Sent to 1 subscriber.".to_owned(),
                    n => format!("Sent to {n} subscribers."),
                })),
                Err(e) => error.set(Some(format!("Not sent: {e}"))),
            }
            busy.set(false);
        });
    };

    view! {
        <form class="card" id="event-creator" on:submit=submit novalidate>
            <h2>"Event creator"</h2>
            <p class="hint">"Send an event to a channel, as your server would through the REST API."</p>
            <div class="row wrap">
                <div class="field">
                    <label for="send-channel">"Channel"</label>
                    <input id="send-channel" bind:value=channel />
                </div>
                <div class="field">
                    <label for="send-event">"Event"</label>
                    <input id="send-event" bind:value=event />
                </div>
            </div>
            <div class="field">
                <label for="send-data">"Data (JSON)"</label>
                <textarea id="send-data" rows="4" spellcheck="false" bind:value=data></textarea>
            </div>
            <ErrorNote error=error />
            {move || result.get().map(|r| view! { <p class="ok" role="status" id="send-result">{r}</p> })}
            <button type="submit" disabled=busy>{move || if busy.get() { "Sending…" } else { "Send event" }}</button>
        </form>
    }
}
