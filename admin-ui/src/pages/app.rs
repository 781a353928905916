//! One app: its credentials and ready-to-paste client settings (overview), its settings with
//! secret rotation and deletion, its debug console and its webhooks.

use std::collections::BTreeMap;
use std::time::Duration;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};
use leptos_router::NavigateOptions;
use shared::admin::{
    App, AppLimitsPatch, AppPatch, QuotaPeriod, RotateSecretRequest, LIMITS, USER_AUTH_TIMEOUT_SECS,
};
use shared::snippets::{self, Credentials, ServerAddress};

use super::apps::{confirm_disable, name_problem, set_enabled};
use crate::api;
use crate::ui::{confirm, maybe_datetime, remote, CopyButton, ErrorNote, LoadingNote};

/// The part of the app page to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Settings,
    Console,
    Webhooks,
    Stats,
}

/// How often the overview refreshes the connection count.
const REFRESH: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Loading,
    Failed(String),
    Ready,
}

#[component]
pub fn AppPage(tab: Tab) -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let (loaded, load) = remote::<App>(move || format!("/apps/{}", id.get_untracked()));
    Effect::new(move || {
        id.track();
        load();
    });
    if tab == Tab::Overview {
        if let Ok(handle) = set_interval_with_handle(load, REFRESH) {
            on_cleanup(move || handle.clear());
        }
    }
    let status = Memo::new(move |_| match loaded.get() {
        None => Status::Loading,
        Some(Err(e)) if e.status == 404 => {
            Status::Failed("There is no app with this id. It may have been deleted.".into())
        }
        Some(Err(e)) => Status::Failed(format!("Could not load the app: {e}")),
        Some(Ok(_)) => Status::Ready,
    });
    let app = Signal::derive(move || {
        loaded.with(|l| {
            l.as_ref()
                .and_then(|r| r.as_ref().ok())
                .cloned()
                .unwrap_or_default()
        })
    });
    let set_app = move |a: App| loaded.set(Some(Ok(a)));

    view! {
        {move || match status.get() {
            Status::Loading => view! { <LoadingNote what="the app" /> }.into_any(),
            Status::Failed(message) => view! {
                <section>
                    <p class="error" role="alert">{message}</p>
                    <p><A href=crate::BASE>"Back to your apps"</A></p>
                </section>
            }.into_any(),
            Status::Ready => view! {
                <section>
                    <AppHeader app=app set_app=set_app />
                    {match tab {
                        Tab::Overview => view! { <Overview app=app /> }.into_any(),
                        Tab::Settings => view! { <Settings app=app set_app=set_app /> }.into_any(),
                        Tab::Console => view! { <super::console::Console app=app /> }.into_any(),
                        Tab::Webhooks => view! { <super::webhooks::Webhooks app=app /> }.into_any(),
                        Tab::Stats => view! { <super::app_stats::StatsTab app=app /> }.into_any(),
                    }}
                </section>
            }.into_any(),
        }}
    }
}

#[component]
fn AppHeader(
    app: Signal<App>,
    set_app: impl Fn(App) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let toggle = move |_| {
        let current = app.get_untracked();
        let enabled = !current.enabled;
        if !enabled && !confirm_disable(&current) {
            return;
        }
        leptos::task::spawn_local(async move {
            match set_enabled(&current, enabled).await {
                Ok(updated) => {
                    error.set(None);
                    set_app(updated);
                }
                Err(e) => error.set(Some(format!("Could not change the app: {e}"))),
            }
        });
    };
    let base = move || format!("{}/apps/{}", crate::BASE, app.with(|a| a.id.clone()));
    view! {
        <div class="app-header">
            <p class="crumbs"><A href="/admin/apps">"Apps"</A> " / "</p>
            <h1>{move || app.with(|a| a.name.clone())}</h1>
            <p class="status">
                {move || if app.with(|a| a.enabled) {
                    view! { <span class="badge on">"Enabled"</span> }.into_any()
                } else {
                    view! { <span class="badge off">"Disabled: clients cannot connect"</span> }.into_any()
                }}
                <button type="button" id="toggle-app" class="secondary" on:click=toggle>
                    {move || if app.with(|a| a.enabled) { "Switch off" } else { "Switch on" }}
                </button>
            </p>
            <ErrorNote error=error />
            <nav class="tabs" aria-label="App sections">
                <A href=base exact=true>"Overview"</A>
                <A href=move || format!("{}/settings", base())>"Settings"</A>
                <A href=move || format!("{}/console", base())>"Debug console"</A>
                <A href=move || format!("{}/webhooks", base())>"Webhooks"</A>
                <A href=move || format!("{}/stats", base())>"Stats"</A>
            </nav>
        </div>
    }
}

/// Where this page was loaded from: what clients should connect to.
fn server_address() -> ServerAddress {
    let location = window().location();
    ServerAddress::from_location(
        &location.hostname().unwrap_or_default(),
        &location.port().unwrap_or_default(),
        &location.protocol().unwrap_or_default(),
    )
}

const MASK: &str = "••••••••••••••••";

#[component]
fn Overview(app: Signal<App>) -> impl IntoView {
    let revealed = RwSignal::new(false);
    let chosen = RwSignal::new("pusher-js");
    let at = server_address();
    let at_copy = at.clone();
    let snippet = move |secret_shown: bool| {
        app.with(|a| {
            let secret = if secret_shown {
                a.secret.as_str()
            } else {
                MASK
            };
            let creds = Credentials {
                app_id: &a.id,
                key: &a.key,
                secret,
            };
            snippets::all(creds, &at)
        })
    };
    let shown = {
        let snippet = snippet.clone();
        move || {
            let id = chosen.get();
            snippet(revealed.get())
                .into_iter()
                .find(|s| s.id == id)
                .map(|s| s.text)
                .unwrap_or_default()
        }
    };
    // What the copy button copies always carries the real secret.
    let copied = Signal::derive(move || {
        let id = chosen.get();
        app.with(|a| {
            let creds = Credentials {
                app_id: &a.id,
                key: &a.key,
                secret: &a.secret,
            };
            snippets::all(creds, &at_copy)
                .into_iter()
                .find(|s| s.id == id)
                .map(|s| s.text)
                .unwrap_or_default()
        })
    });
    let tabs = snippet(false);
    view! {
        <div class="grid">
            <div class="card">
                <h2>"Credentials"</h2>
                <dl class="credentials">
                    <dt>"App ID"</dt>
                    <dd>
                        <code id="app-id">{move || app.with(|a| a.id.clone())}</code>
                        <CopyButton text=Signal::derive(move || app.with(|a| a.id.clone())) label="Copy app ID" />
                    </dd>
                    <dt>"Key"</dt>
                    <dd>
                        <code id="app-key">{move || app.with(|a| a.key.clone())}</code>
                        <CopyButton text=Signal::derive(move || app.with(|a| a.key.clone())) label="Copy key" />
                    </dd>
                    <dt>"Secret"</dt>
                    <dd>
                        <code id="app-secret">
                            {move || if revealed.get() { app.with(|a| a.secret.clone()) } else { MASK.to_owned() }}
                        </code>
                        <button type="button" id="reveal-secret" class="secondary" aria-pressed=move || revealed.get().to_string()
                            on:click=move |_| revealed.update(|r| *r = !*r)>
                            {move || if revealed.get() { "Hide" } else { "Reveal" }}
                        </button>
                        <CopyButton text=Signal::derive(move || app.with(|a| a.secret.clone())) label="Copy secret" />
                    </dd>
                </dl>
                {move || app.with(|a| a.previous_secret_expires_at).map(|at| view! {
                    <p class="hint">"The previous secret keeps signing until " {maybe_datetime(Some(at))} "."</p>
                })}
            </div>
            <div class="card">
                <h2>"Right now"</h2>
                <p class="big" id="connection-count">{move || app.with(|a| a.connections)}</p>
                <p class="hint">"connections open on this server (refreshed every few seconds)"</p>
                <p id="message-usage">
                    {move || app.with(|a| format!(
                        "{} messages today, {} this month",
                        a.usage.messages_today, a.usage.messages_this_month
                    ))}
                    {move || app.with(|a| a.usage.over_quota).map(|period| view! {
                        <span class="badge off" id="over-quota">{match period {
                            QuotaPeriod::Day => "Over its daily message quota",
                            QuotaPeriod::Month => "Over its monthly message quota",
                        }}</span>
                    })}
                </p>
                <p><A href=move || format!("{}/apps/{}/console", crate::BASE, app.with(|a| a.id.clone()))>"Watch them in the debug console"</A></p>
            </div>
        </div>
        <div class="card">
            <h2>"Connect your code"</h2>
            <p class="hint">
                "Settings filled in for this server. Client snippets never contain the secret; "
                "server ones do, so keep them out of browsers and public repositories."
            </p>
            <div class="snippet-tabs" role="tablist" aria-label="Snippets">
                {tabs.into_iter().map(|s| {
                    let id = s.id;
                    view! {
                        <button type="button" role="tab" id=format!("snippet-tab-{id}")
                            aria-selected=move || (chosen.get() == id).to_string()
                            on:click=move |_| chosen.set(id)>
                            {s.title}
                        </button>
                    }
                }).collect_view()}
            </div>
            <div class="snippet" role="tabpanel">
                <pre><code id="snippet-text">{shown}</code></pre>
                <CopyButton text=copied label="Copy snippet" />
            </div>
        </div>
    }
}

/// The settings form's text fields, as typed.
#[derive(Clone)]
struct Form {
    name: RwSignal<String>,
    origins: RwSignal<String>,
    client_events: RwSignal<bool>,
    require_user_auth: RwSignal<bool>,
    user_auth_timeout: RwSignal<String>,
    watchlist_events: RwSignal<bool>,
    subscription_count_events: RwSignal<bool>,
    limits: Vec<(&'static str, RwSignal<String>)>,
}

impl Form {
    fn new(app: &App) -> Self {
        Self {
            name: RwSignal::new(app.name.clone()),
            origins: RwSignal::new(app.allowed_origins.join("\n")),
            client_events: RwSignal::new(app.client_events),
            require_user_auth: RwSignal::new(app.require_user_auth),
            user_auth_timeout: RwSignal::new(app.user_auth_timeout_secs.to_string()),
            watchlist_events: RwSignal::new(app.watchlist_events),
            subscription_count_events: RwSignal::new(app.subscription_count_events),
            limits: LIMITS
                .iter()
                .map(|spec| {
                    let value = app.limits.get(spec.field).unwrap_or_default();
                    (spec.field, RwSignal::new(value.to_string()))
                })
                .collect(),
        }
    }

    /// The patch of what differs from `base` (the app as this page last loaded or saved it),
    /// or the problems by field. Only changed fields are sent, so that saving never writes back
    /// a field someone else changed meanwhile.
    fn patch(&self, base: &App) -> Result<AppPatch, BTreeMap<String, String>> {
        let mut problems = BTreeMap::new();
        let name = self.name.get_untracked();
        if let Some(p) = name_problem(&name) {
            problems.insert("name".to_owned(), p);
        }
        let origins: Vec<String> = self
            .origins
            .get_untracked()
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        if let Some(bad) = origins
            .iter()
            .find(|o| o.contains(char::is_whitespace) || o.contains('/') && !o.contains("://"))
        {
            problems.insert(
                "allowed_origins".to_owned(),
                format!("\"{bad}\" is not an origin. Use https://host[:port], a host name, *.example.com or *."),
            );
        }
        let (min, max) = USER_AUTH_TIMEOUT_SECS;
        let timeout = ranged(&self.user_auth_timeout.get_untracked(), min, max);
        if let Err(p) = &timeout {
            problems.insert("user_auth_timeout_secs".to_owned(), p.clone());
        }
        let mut limits = AppLimitsPatch::default();
        for (spec, (field, value)) in LIMITS.iter().zip(&self.limits) {
            match ranged(&value.get_untracked(), spec.min, spec.max) {
                Ok(v) => {
                    if base.limits.get(field) != Some(v) {
                        limits.set(field, v);
                    }
                }
                Err(p) => {
                    problems.insert(format!("limits.{field}"), p);
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(AppPatch {
            name: changed(name.trim().to_owned(), &base.name),
            enabled: None,
            allowed_origins: changed(origins, &base.allowed_origins),
            client_events: changed(self.client_events.get_untracked(), &base.client_events),
            require_user_auth: changed(
                self.require_user_auth.get_untracked(),
                &base.require_user_auth,
            ),
            user_auth_timeout_secs: timeout
                .ok()
                .and_then(|t| changed(t, &base.user_auth_timeout_secs)),
            watchlist_events: changed(
                self.watchlist_events.get_untracked(),
                &base.watchlist_events,
            ),
            subscription_count_events: changed(
                self.subscription_count_events.get_untracked(),
                &base.subscription_count_events,
            ),
            limits: Some(limits),
        })
    }
}

/// `Some(value)` when it differs from what is stored.
fn changed<T: PartialEq>(value: T, base: &T) -> Option<T> {
    (value != *base).then_some(value)
}

fn ranged(text: &str, min: u32, max: u32) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("Enter a whole number from {min} to {max}.")),
    }
}

#[component]
fn Settings(
    app: Signal<App>,
    set_app: impl Fn(App) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let form = Form::new(&app.get_untracked());
    let problems = RwSignal::new(BTreeMap::<String, String>::new());
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let problem = move |field: &'static str| move || problems.with(|p| p.get(field).cloned());

    let submit = {
        let form = form.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            saved.set(false);
            let patch = match form.patch(&app.get_untracked()) {
                Ok(patch) => patch,
                Err(found) => {
                    problems.set(found);
                    error.set(Some(
                        "Some settings need fixing; see the notes beside them.".into(),
                    ));
                    return;
                }
            };
            problems.set(BTreeMap::new());
            error.set(None);
            busy.set(true);
            let id = app.get_untracked().id;
            leptos::task::spawn_local(async move {
                match api::patch::<_, App>(&format!("/apps/{id}"), &patch).await {
                    Ok(updated) => {
                        set_app(updated);
                        saved.set(true);
                    }
                    Err(e) => {
                        if let Some(field) = e.field.clone() {
                            problems.update(|p| {
                                p.insert(field, e.message.clone());
                            });
                        }
                        error.set(Some(format!("Not saved: {e}")));
                    }
                }
                busy.set(false);
            });
        }
    };

    let limit_inputs = LIMITS
        .iter()
        .zip(form.limits.clone())
        .map(|(spec, (field, value))| {
            let id = format!("limit-{field}");
            let key = format!("limits.{field}");
            let note = move || problems.with(|p| p.get(&key).cloned());
            if spec.is_switch() {
                // A 0/1 limit is a switch; the form keeps its value as "0" or "1".
                let checked = Signal::derive(move || value.get() == "1");
                return view! {
                    <div class="field">
                        <label class="check">
                            <input type="checkbox" id=id name=field prop:checked=checked
                                on:change=move |ev| value.set(if event_target_checked(&ev) { "1".into() } else { "0".into() }) />
                            " " {spec.label}
                        </label>
                    </div>
                }
                .into_any();
            }
            view! {
                <div class="field">
                    <label for=id.clone()>{spec.label}</label>
                    <input id=id name=field inputmode="numeric" bind:value=value />
                    <small>{spec.help} {if spec.help.is_empty() { "" } else { " · " }} {format!("{} to {}", spec.min, spec.max)}</small>
                    {move || note().map(|n| view! { <small class="error">{n}</small> })}
                </div>
            }
            .into_any()
        })
        .collect_view();

    view! {
        <form class="card settings" on:submit=submit novalidate>
            <h2>"Settings"</h2>
            <div class="field">
                <label for="app-name">"Name"</label>
                <input id="app-name" name="name" bind:value=form.name />
                {move || problem("name")().map(|n| view! { <small class="error">{n}</small> })}
            </div>
            <div class="field">
                <label for="app-origins">"Allowed origins"</label>
                <textarea id="app-origins" name="allowed_origins" rows="3" placeholder="https://example.com" bind:value=form.origins></textarea>
                <small>"One per line: https://host[:port], a host, *.example.com or *. Empty allows any origin."</small>
                {move || problem("allowed_origins")().map(|n| view! { <small class="error">{n}</small> })}
            </div>
            <fieldset>
                <legend>"Features"</legend>
                <label class="check"><input type="checkbox" id="app-client-events" bind:checked=form.client_events />
                    " Client events (clients send " <code>"client-"</code> " events on private and presence channels)"</label>
                <label class="check"><input type="checkbox" id="app-require-auth" bind:checked=form.require_user_auth />
                    " Authorized connections only (clients must sign in or join a private channel in time)"</label>
                <div class="field indent">
                    <label for="app-auth-timeout">"Time to sign in (seconds)"</label>
                    <input id="app-auth-timeout" inputmode="numeric" bind:value=form.user_auth_timeout />
                    {move || problem("user_auth_timeout_secs")().map(|n| view! { <small class="error">{n}</small> })}
                </div>
                <label class="check"><input type="checkbox" id="app-watchlist" bind:checked=form.watchlist_events />
                    " Watchlist events (online/offline of users a signed-in user watches)"</label>
                <label class="check"><input type="checkbox" id="app-subscription-count" bind:checked=form.subscription_count_events />
                    " Subscription count events"</label>
            </fieldset>
            <fieldset>
                <legend>"Limits"</legend>
                <div class="limits">{limit_inputs}</div>
            </fieldset>
            <ErrorNote error=error />
            {move || saved.get().then(|| view! { <p class="ok" role="status">"Saved. The changes apply now."</p> })}
            <button type="submit" disabled=busy>{move || if busy.get() { "Saving…" } else { "Save settings" }}</button>
        </form>
        <RotateSecret app=app set_app=set_app />
        <DeleteApp app=app />
    }
}

#[component]
fn RotateSecret(
    app: Signal<App>,
    set_app: impl Fn(App) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let grace = RwSignal::new("0".to_owned());
    let error = RwSignal::new(None::<String>);
    let done = RwSignal::new(false);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        done.set(false);
        let secs: u32 = grace.get_untracked().parse().unwrap_or(0);
        let message = if secs == 0 {
            "Rotate the secret now? Servers and auth endpoints that sign with the old one stop working at once."
        } else {
            "Rotate the secret? The old one keeps signing for the grace period you chose."
        };
        if !confirm(message) {
            return;
        }
        let id = app.get_untracked().id;
        let body = RotateSecretRequest {
            grace_period_secs: Some(secs),
        };
        leptos::task::spawn_local(async move {
            match api::post::<_, App>(&format!("/apps/{id}/rotate-secret"), &body).await {
                Ok(updated) => {
                    error.set(None);
                    set_app(updated);
                    done.set(true);
                }
                Err(e) => error.set(Some(format!("The secret was not rotated: {e}"))),
            }
        });
    };
    view! {
        <form class="card danger" on:submit=submit>
            <h2>"Rotate secret"</h2>
            <p>"Issue a new secret, for example after it leaked. Update your servers with the new one."</p>
            <label for="grace">"Old secret keeps working for"</label>
            <div class="row">
                <select id="grace" bind:value=grace>
                    <option value="0">"no time: stop it now"</option>
                    <option value="3600">"1 hour"</option>
                    <option value="86400">"1 day"</option>
                    <option value="604800">"7 days"</option>
                </select>
                <button type="submit" class="warn">"Rotate secret"</button>
            </div>
            <ErrorNote error=error />
            {move || done.get().then(|| view! { <p class="ok" role="status">"A new secret is active; see the Overview tab."</p> })}
        </form>
    }
}

#[component]
fn DeleteApp(app: Signal<App>) -> impl IntoView {
    let typed = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let matches = move || typed.with(|t| app.with(|a| t.trim() == a.name));
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if !matches() {
            error.set(Some("Type the app's name exactly to confirm.".into()));
            return;
        }
        let id = app.get_untracked().id;
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match api::delete(&format!("/apps/{id}")).await {
                Ok(()) => navigate("/apps", NavigateOptions::default()),
                Err(e) => error.set(Some(format!("The app was not deleted: {e}"))),
            }
        });
    };
    view! {
        <form class="card danger" on:submit=submit novalidate>
            <h2>"Delete app"</h2>
            <p>"Disconnects every client of this app and deletes its credentials and settings. This cannot be undone."</p>
            <label for="delete-confirm">"Type " <strong>{move || app.with(|a| a.name.clone())}</strong> " to confirm"</label>
            <div class="row">
                <input id="delete-confirm" autocomplete="off" bind:value=typed />
                <button type="submit" class="warn" disabled=move || !matches()>"Delete this app"</button>
            </div>
            <ErrorNote error=error />
        </form>
    }
}
