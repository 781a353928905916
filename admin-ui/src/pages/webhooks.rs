//! An app's webhooks: its endpoints (add, change, delete, send a test event) with each one's
//! circuit breaker and success rate, and for the chosen endpoint the delivery log and the
//! dead letters with replay (one, or all of the app's).
//!
//! The lists refresh every few seconds while the page is open, so a delivery, a retry or a
//! breaker opening shows up without reloading. A signing secret the server generated is shown
//! once, right after the save that made it; afterwards only its masked hint.

use std::collections::BTreeSet;
use std::time::Duration;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use shared::admin::App;
use shared::webhooks::{
    ReplayResult, WebhookDelivery, WebhookEndpoint, WebhookEndpointInput, EVENT_TYPES,
    SIGNING_SECRET_LEN,
};

use crate::api;
use crate::ui::{confirm, datetime, remote, CopyButton, ErrorNote, LoadingNote};

/// How often the endpoints and the delivery log refresh.
const REFRESH: Duration = Duration::from_secs(2);
/// Deliveries shown per endpoint.
const LOG_ROWS: usize = 50;
/// Characters of a response shown in the log (all of it in the tooltip).
const RESPONSE_CHARS: usize = 60;

/// What to do with the signing secret on save.
const SECRET_APP: &str = "app";
const SECRET_KEEP: &str = "keep";
const SECRET_GENERATE: &str = "generate";
const SECRET_CUSTOM: &str = "custom";

/// Runs `load` every [`REFRESH`] while the component lives.
fn every_refresh(load: impl Fn() + 'static) {
    if let Ok(handle) = set_interval_with_handle(load, REFRESH) {
        on_cleanup(move || handle.clear());
    }
}

fn all_types() -> BTreeSet<String> {
    EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect()
}

/// One checkbox per event type.
fn type_boxes(form: Form) -> impl IntoView {
    EVENT_TYPES
        .iter()
        .map(|t| {
            let name = (*t).to_owned();
            let checked_name = name.clone();
            view! {
                <label class="check">
                    <input type="checkbox" id=format!("webhook-type-{t}")
                        prop:checked=move || form.types.with(|s| s.contains(&checked_name))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            let name = name.clone();
                            form.types.update(|s| { if on { s.insert(name); } else { s.remove(&name); } });
                        } />
                    " " <code>{*t}</code>
                </label>
            }
        })
        .collect_view()
}

/// The endpoint form, as typed.
#[derive(Clone, Copy)]
struct Form {
    /// The endpoint being changed; `None` while adding one.
    id: RwSignal<Option<String>>,
    url: RwSignal<String>,
    types: RwSignal<BTreeSet<String>>,
    prefix: RwSignal<String>,
    suffix: RwSignal<String>,
    /// `Name: value`, one per line.
    headers: RwSignal<String>,
    enabled: RwSignal<bool>,
    secret_mode: RwSignal<String>,
    secret: RwSignal<String>,
    /// The endpoint being changed has its own secret.
    has_secret: RwSignal<bool>,
}

impl Form {
    fn new() -> Self {
        Self {
            id: RwSignal::new(None),
            url: RwSignal::new(String::new()),
            types: RwSignal::new(all_types()),
            prefix: RwSignal::new(String::new()),
            suffix: RwSignal::new(String::new()),
            headers: RwSignal::new(String::new()),
            enabled: RwSignal::new(true),
            secret_mode: RwSignal::new(SECRET_APP.to_owned()),
            secret: RwSignal::new(String::new()),
            has_secret: RwSignal::new(false),
        }
    }

    fn clear(&self) {
        self.id.set(None);
        self.url.set(String::new());
        self.types.set(all_types());
        self.prefix.set(String::new());
        self.suffix.set(String::new());
        self.headers.set(String::new());
        self.enabled.set(true);
        self.secret_mode.set(SECRET_APP.to_owned());
        self.secret.set(String::new());
        self.has_secret.set(false);
    }

    fn fill(&self, e: &WebhookEndpoint) {
        self.id.set(Some(e.id.clone()));
        self.url.set(e.url.clone());
        self.types.set(e.event_types.iter().cloned().collect());
        self.prefix
            .set(e.channel_prefix.clone().unwrap_or_default());
        self.suffix
            .set(e.channel_suffix.clone().unwrap_or_default());
        self.headers.set(
            e.headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        self.enabled.set(e.enabled);
        let own = e.signing_secret_hint.is_some();
        self.has_secret.set(own);
        self.secret_mode
            .set(if own { SECRET_KEEP } else { SECRET_APP }.to_owned());
        self.secret.set(String::new());
    }

    /// The request body, or the sentence that says what to fix.
    fn input(&self) -> Result<WebhookEndpointInput, String> {
        let url = self.url.get_untracked().trim().to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(
                "Enter the URL to send webhooks to, starting with http:// or https://.".into(),
            );
        }
        let types: Vec<String> = self.types.get_untracked().into_iter().collect();
        if types.is_empty() {
            return Err("Choose at least one event type.".into());
        }
        let mut headers = std::collections::BTreeMap::new();
        for line in self.headers.get_untracked().lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("\"{line}\" is not a header: write Name: value."));
            };
            headers.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        let (signing_secret, generate) = match self.secret_mode.get_untracked().as_str() {
            SECRET_KEEP => (None, None),
            SECRET_GENERATE => (None, Some(true)),
            SECRET_CUSTOM => {
                let secret = self.secret.get_untracked().trim().to_owned();
                let (min, max) = SIGNING_SECRET_LEN;
                if secret.len() < min || secret.len() > max {
                    return Err(format!(
                        "The signing secret must be {min} to {max} characters."
                    ));
                }
                (Some(secret), None)
            }
            // The app secret: a new endpoint needs nothing; a changed one drops its own.
            _ => (self.has_secret.get_untracked().then(String::new), None),
        };
        Ok(WebhookEndpointInput {
            url: Some(url),
            event_types: Some(types),
            channel_prefix: Some(self.prefix.get_untracked().trim().to_owned()),
            channel_suffix: Some(self.suffix.get_untracked().trim().to_owned()),
            headers: Some(headers),
            enabled: Some(self.enabled.get_untracked()),
            signing_secret,
            generate_signing_secret: generate,
        })
    }
}

fn breaker_badge(e: &WebhookEndpoint) -> AnyView {
    let b = &e.breaker;
    match b.state.as_str() {
        "open" => view! {
            <span class="badge off breaker" data-state="open"
                title=format!("{} consecutive failures; a probe request goes at {}", b.consecutive_failures,
                    b.retry_at_ms.map(|ms| datetime(ms / 1000)).unwrap_or_default())>
                "Paused (circuit open)"
            </span>
        }.into_any(),
        "half_open" => view! { <span class="badge breaker" data-state="half_open">"Probing"</span> }.into_any(),
        _ => view! { <span class="badge on breaker" data-state="closed">"Healthy"</span> }.into_any(),
    }
}

fn success_rate(e: &WebhookEndpoint) -> String {
    e.stats
        .success_rate
        .map_or_else(|| "—".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

#[component]
pub fn Webhooks(app: Signal<App>) -> impl IntoView {
    let app_id = StoredValue::new(app.get_untracked().id);
    let (endpoints, load) =
        remote::<Vec<WebhookEndpoint>>(move || format!("/apps/{}/webhooks", app_id.get_value()));
    load();
    every_refresh(load);
    let form = Form::new();
    let form_open = RwSignal::new(false);
    let selected = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let new_secret = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let input = match form.input() {
            Ok(input) => input,
            Err(problem) => {
                error.set(Some(problem));
                return;
            }
        };
        error.set(None);
        busy.set(true);
        let app = app_id.get_value();
        let editing = form.id.get_untracked();
        leptos::task::spawn_local(async move {
            let saved = match &editing {
                Some(id) => {
                    api::patch::<_, WebhookEndpoint>(&format!("/apps/{app}/webhooks/{id}"), &input)
                        .await
                }
                None => {
                    api::post::<_, WebhookEndpoint>(&format!("/apps/{app}/webhooks"), &input).await
                }
            };
            busy.set(false);
            match saved {
                Ok(endpoint) => {
                    new_secret.set(endpoint.signing_secret.clone());
                    // The row shows the saved settings at once, before the list reloads (the
                    // answer carries no delivery counts, so the row keeps its own).
                    endpoints.update(|list| {
                        if let Some(Ok(list)) = list {
                            let saved = WebhookEndpoint {
                                signing_secret: None,
                                ..endpoint.clone()
                            };
                            match list.iter_mut().find(|e| e.id == endpoint.id) {
                                Some(row) => {
                                    *row = WebhookEndpoint {
                                        stats: row.stats.clone(),
                                        ..saved
                                    }
                                }
                                None => list.push(saved),
                            }
                        }
                    });
                    notice.set(Some(if editing.is_some() {
                        "Endpoint saved. Changes apply to new events now.".into()
                    } else {
                        "Endpoint added. New events go to it now.".into()
                    }));
                    selected.set(Some(endpoint.id));
                    form.clear();
                    form_open.set(false);
                    load();
                }
                Err(e) => error.set(Some(format!("Not saved: {e}"))),
            }
        });
    };
    let edit = move |e: WebhookEndpoint| {
        form.fill(&e);
        notice.set(None);
        new_secret.set(None);
        form_open.set(true);
    };
    let remove = move |e: WebhookEndpoint| {
        if !confirm(&format!(
            "Delete the endpoint {}? Its delivery log and pending deliveries are deleted too.",
            e.url
        )) {
            return;
        }
        let app = app_id.get_value();
        leptos::task::spawn_local(async move {
            match api::delete(&format!("/apps/{app}/webhooks/{}", e.id)).await {
                Ok(()) => {
                    if selected.get_untracked().as_deref() == Some(e.id.as_str()) {
                        selected.set(None);
                    }
                    notice.set(Some("Endpoint deleted.".into()));
                    load();
                }
                Err(e) => error.set(Some(format!("Not deleted: {e}"))),
            }
        });
    };
    let send_test = move |e: WebhookEndpoint| {
        let app = app_id.get_value();
        leptos::task::spawn_local(async move {
            match api::post::<_, WebhookDelivery>(
                &format!("/apps/{app}/webhooks/{}/test", e.id),
                &(),
            )
            .await
            {
                Ok(_) => {
                    notice.set(Some(format!(
                        "Test event queued for {}; watch it in the delivery log.",
                        e.url
                    )));
                    selected.set(Some(e.id));
                }
                Err(e) => error.set(Some(format!("No test event was sent: {e}"))),
            }
        });
    };

    let rows = move || {
        match endpoints.get() {
        None => view! { <LoadingNote what="webhook endpoints" /> }.into_any(),
        Some(Err(e)) => view! { <p class="error" role="alert">"Could not load the endpoints: " {e.message}</p> }.into_any(),
        Some(Ok(list)) if list.is_empty() => view! {
            <p class="empty" id="no-webhooks">"No endpoints yet: add one to receive this app's events."</p>
        }.into_any(),
        Some(Ok(list)) => view! {
            <div class="table-wrap">
                <table id="webhook-endpoints">
                    <thead>
                        <tr>
                            <th scope="col">"URL"</th>
                            <th scope="col">"Events"</th>
                            <th scope="col">"State"</th>
                            <th scope="col">"Last 24 h"</th>
                            <th scope="col">"Success"</th>
                            <th scope="col"><span class="sr-only">"Actions"</span></th>
                        </tr>
                    </thead>
                    <tbody>
                        {list.into_iter().map(|e| {
                            let (for_edit, for_delete, for_test) = (e.clone(), e.clone(), e.clone());
                            let id = e.id.clone();
                            let shown = e.id.clone();
                            let filter = match (&e.channel_prefix, &e.channel_suffix) {
                                (None, None) => String::new(),
                                (p, s) => format!(" · channels {}…{}", p.clone().unwrap_or_default(), s.clone().unwrap_or_default()),
                            };
                            view! {
                                <tr data-endpoint-id=e.id.clone()
                                    class:chosen=move || selected.get().as_deref() == Some(shown.as_str())>
                                    <td class="url"><code>{e.url.clone()}</code>
                                        {e.signing_secret_hint.clone().map(|h| view! { <small class="hint">" own secret " {h}</small> })}
                                    </td>
                                    <td><small>{e.event_types.join(", ")} {filter}</small></td>
                                    <td>
                                        {if e.enabled {
                                            view! { <span class="badge on">"On"</span> }.into_any()
                                        } else {
                                            view! { <span class="badge off">"Off"</span> }.into_any()
                                        }}
                                        {breaker_badge(&e)}
                                    </td>
                                    <td class="stats"><small>{format!("{} delivered, {} pending, {} failed, {} dead",
                                        e.stats.delivered, e.stats.pending, e.stats.failed, e.stats.dead)}</small></td>
                                    <td class="success-rate">{success_rate(&e)}</td>
                                    <td class="actions">
                                        <button type="button" class="secondary show-log" on:click=move |_| selected.set(Some(id.clone()))>"Deliveries"</button>
                                        <button type="button" class="secondary send-test" on:click=move |_| send_test(for_test.clone())>"Send test event"</button>
                                        <button type="button" class="secondary edit" on:click=move |_| edit(for_edit.clone())>"Edit"</button>
                                        <button type="button" class="warn delete" on:click=move |_| remove(for_delete.clone())>"Delete"</button>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        }.into_any(),
    }
    };

    view! {
        <section class="webhooks">
            <div class="row">
                <h2>"Webhooks"</h2>
                <button type="button" id="add-webhook" on:click=move |_| {
                    form.clear();
                    new_secret.set(None);
                    notice.set(None);
                    form_open.set(true);
                }>"Add endpoint"</button>
            </div>
            <p class="hint">
                "The server POSTs this app's events to each endpoint in Pusher's format, signed "
                "(X-Pusher-Signature, HMAC-SHA256 of the body), batched, and retried until they are "
                "delivered or their retry horizon passes; then they wait in the dead letters for a replay."
            </p>
            <ErrorNote error=error />
            {move || notice.get().map(|n| view! { <p class="ok" role="status" id="webhook-notice">{n}</p> })}
            {move || new_secret.get().map(|secret| {
                let copied = secret.clone();
                view! {
                    <div class="card notice" role="status">
                        <h3>"The endpoint's signing secret"</h3>
                        <p>"Copy it now: it is not shown again. Your receiver checks X-Pusher-Signature with it."</p>
                        <p class="secret-value"><code id="webhook-new-secret">{secret}</code>
                            <CopyButton text=Signal::derive(move || copied.clone()) label="Copy signing secret" /></p>
                    </div>
                }
            })}
            {rows}
            <Show when=move || form_open.get()>
                <form class="card settings" id="webhook-form" on:submit=submit novalidate>
                    <h3>{move || if form.id.get().is_some() { "Change endpoint" } else { "Add an endpoint" }}</h3>
                    <div class="field">
                        <label for="webhook-url">"URL"</label>
                        <input id="webhook-url" type="url" placeholder="https://example.com/pusher/webhooks" bind:value=form.url />
                    </div>
                    <fieldset>
                        <legend>"Events"</legend>
                        <div class="limits">{type_boxes(form)}</div>
                    </fieldset>
                    <div class="row wrap">
                        <div class="field">
                            <label for="webhook-prefix">"Only channels starting with"</label>
                            <input id="webhook-prefix" placeholder="private-" bind:value=form.prefix />
                        </div>
                        <div class="field">
                            <label for="webhook-suffix">"…and ending with"</label>
                            <input id="webhook-suffix" placeholder="-orders" bind:value=form.suffix />
                        </div>
                    </div>
                    <div class="field">
                        <label for="webhook-headers">"Extra headers"</label>
                        <textarea id="webhook-headers" rows="2" placeholder="Authorization: Bearer …" bind:value=form.headers></textarea>
                        <small>"One per line, Name: value. Content-Type, X-Pusher-Key and X-Pusher-Signature are the server's own."</small>
                    </div>
                    <div class="field">
                        <label for="webhook-secret-mode">"Signing secret"</label>
                        <select id="webhook-secret-mode" bind:value=form.secret_mode>
                            // `selected` as well: the value is set before the options exist.
                            <option value=SECRET_APP prop:selected=move || form.secret_mode.get() == SECRET_APP>"The app secret (as Pusher does)"</option>
                            <option value=SECRET_KEEP hidden=move || !form.has_secret.get()
                                prop:selected=move || form.secret_mode.get() == SECRET_KEEP>"Keep this endpoint's own secret"</option>
                            <option value=SECRET_GENERATE prop:selected=move || form.secret_mode.get() == SECRET_GENERATE>"Generate a new secret for this endpoint"</option>
                            <option value=SECRET_CUSTOM prop:selected=move || form.secret_mode.get() == SECRET_CUSTOM>"Set a secret for this endpoint"</option>
                        </select>
                        {move || (form.secret_mode.get() == SECRET_CUSTOM).then(|| view! {
                            <input id="webhook-secret" type="password" autocomplete="off" bind:value=form.secret />
                        })}
                    </div>
                    <label class="check"><input type="checkbox" id="webhook-enabled" bind:checked=form.enabled />" Enabled"</label>
                    <div class="row">
                        <button type="submit" id="save-webhook" disabled=busy>{move || if busy.get() { "Saving…" } else { "Save endpoint" }}</button>
                        <button type="button" class="secondary" on:click=move |_| { form.clear(); form_open.set(false); }>"Cancel"</button>
                    </div>
                </form>
            </Show>
            {move || selected.get().map(|endpoint_id| {
                let url = endpoints.with(|l| l.as_ref().and_then(|r| r.as_ref().ok())
                    .and_then(|list| list.iter().find(|e| e.id == endpoint_id).map(|e| e.url.clone())))
                    .unwrap_or_default();
                view! { <Deliveries app_id=app_id.get_value() endpoint_id=endpoint_id url=url notice=notice error=error /> }
            })}
        </section>
    }
}

fn state_badge(state: &str) -> AnyView {
    let (class, text) = match state {
        "delivered" => ("badge on", "delivered"),
        "pending" => ("badge", "pending"),
        "failed" => ("badge off", "failed"),
        _ => ("badge off", "dead"),
    };
    view! { <span class=class>{text}</span> }.into_any()
}

fn short(text: &str) -> String {
    let mut out: String = text.chars().take(RESPONSE_CHARS).collect();
    if text.chars().count() > RESPONSE_CHARS {
        out.push('…');
    }
    out
}

/// One endpoint's recent deliveries and dead letters.
#[component]
fn Deliveries(
    app_id: String,
    endpoint_id: String,
    url: String,
    notice: RwSignal<Option<String>>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let ids = StoredValue::new((app_id, endpoint_id));
    let (log, load_log) = remote::<Vec<WebhookDelivery>>(move || {
        let (app, endpoint) = ids.get_value();
        format!("/apps/{app}/webhook-deliveries?endpoint={endpoint}&limit={LOG_ROWS}")
    });
    let (dead, load_dead) = remote::<Vec<WebhookDelivery>>(move || {
        let (app, endpoint) = ids.get_value();
        format!("/apps/{app}/webhook-deliveries?endpoint={endpoint}&state=dead&limit={LOG_ROWS}")
    });
    let reload = move || {
        load_log();
        load_dead();
    };
    reload();
    every_refresh(reload);

    let replay = move |delivery: Option<String>| {
        let app = ids.get_value().0;
        let path = match &delivery {
            Some(id) => format!("/apps/{app}/webhook-deliveries/{id}/replay"),
            None => format!("/apps/{app}/webhook-deliveries/replay"),
        };
        leptos::task::spawn_local(async move {
            match api::post::<_, ReplayResult>(&path, &()).await {
                Ok(r) => {
                    notice.set(Some(match r.replayed {
                        1 => "1 delivery is queued again.".to_owned(),
                        n => format!("{n} deliveries are queued again."),
                    }));
                    reload();
                }
                Err(e) => error.set(Some(format!("Not replayed: {e}"))),
            }
        });
    };

    let table = move |list: Vec<WebhookDelivery>, id: &'static str| {
        view! {
            <div class="table-wrap">
                <table class="log" id=id>
                    <thead>
                        <tr>
                            <th scope="col">"Time"</th>
                            <th scope="col">"State"</th>
                            <th scope="col">"Events"</th>
                            <th scope="col">"HTTP"</th>
                            <th scope="col">"Latency"</th>
                            <th scope="col">"Attempts"</th>
                            <th scope="col">"Next retry"</th>
                            <th scope="col">"Response"</th>
                            <th scope="col"><span class="sr-only">"Actions"</span></th>
                        </tr>
                    </thead>
                    <tbody>
                        {list.into_iter().map(|d| {
                            let replayable = d.state != "pending";
                            let delivery = d.id.clone();
                            let answer = d.response.clone().or_else(|| d.error.clone()).unwrap_or_default();
                            view! {
                                <tr data-delivery-id=d.id.clone() data-state=d.state.clone()>
                                    <td class="time">{datetime(d.created_at_ms / 1000)}</td>
                                    <td>{state_badge(&d.state)}</td>
                                    <td class="events">{d.events}</td>
                                    <td class="status">{d.status_code.map_or_else(|| "—".into(), |s| s.to_string())}</td>
                                    <td>{d.latency_ms.map_or_else(|| "—".into(), |ms| format!("{ms} ms"))}</td>
                                    <td class="attempts">{d.attempts}</td>
                                    <td>{d.next_attempt_at_ms.map_or_else(|| "—".into(), |ms| datetime(ms / 1000))}</td>
                                    <td class="details"><code title=answer.clone()>{short(&answer)}</code></td>
                                    <td class="actions">
                                        {replayable.then(|| view! {
                                            <button type="button" class="secondary replay" on:click=move |_| replay(Some(delivery.clone()))>"Replay"</button>
                                        })}
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        }
    };

    view! {
        <div class="card" id="webhook-deliveries">
            <h3>"Deliveries to " <code>{url}</code></h3>
            {move || match log.get() {
                None => view! { <LoadingNote what="deliveries" /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">"Could not load the deliveries: " {e.message}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="empty">"No deliveries yet."</p> }.into_any(),
                Some(Ok(list)) => table(list, "delivery-log").into_any(),
            }}
            <div class="row">
                <h3>"Dead letters"</h3>
                <button type="button" class="secondary" id="replay-all"
                    on:click=move |_| {
                        if confirm("Send every dead delivery of this app again now?") {
                            replay(None);
                        }
                    }>"Replay all dead letters of this app"</button>
            </div>
            {move || match dead.get() {
                None => view! { <LoadingNote what="dead letters" /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">"Could not load the dead letters: " {e.message}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="empty" id="no-dead-letters">"No dead letters."</p> }.into_any(),
                Some(Ok(list)) => table(list, "dead-letters").into_any(),
            }}
        </div>
    }
}
