//! The apps list: name, on/off switch and live connection count (refreshed every few
//! seconds), the form that creates an app (with generated credentials, or kept ones from
//! another server), and the import of another server's apps (`super::import`).

use std::time::Duration;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;
use shared::admin::{App, AppPatch, NewApp, MAX_NAME};
use shared::credentials;

use crate::api;
use crate::ui::{confirm, remote, ErrorNote, LoadingNote};

/// How often the list refreshes its connection counts.
const REFRESH: Duration = Duration::from_secs(3);

pub fn name_problem(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        Some("Give the app a name.".to_owned())
    } else if name.chars().count() > MAX_NAME {
        Some(format!("The name can have at most {MAX_NAME} characters."))
    } else {
        None
    }
}

/// Switches an app on or off, asking first when switching off drops clients.
pub async fn set_enabled(app: &App, enabled: bool) -> Result<App, api::ApiError> {
    let patch = AppPatch {
        enabled: Some(enabled),
        ..AppPatch::default()
    };
    api::patch::<_, App>(&format!("/apps/{}", app.id), &patch).await
}

pub fn confirm_disable(app: &App) -> bool {
    confirm(&format!(
        "Switch off \"{}\"? Its {} connected client(s) will be disconnected and new ones refused \
         until you switch it on again.",
        app.name, app.connections
    ))
}

#[component]
pub fn AppsPage() -> impl IntoView {
    let (apps, load) = remote::<Vec<App>>(|| "/apps".to_owned());
    load();
    if let Ok(handle) = set_interval_with_handle(load, REFRESH) {
        on_cleanup(move || handle.clear());
    }
    let action_error = RwSignal::new(None::<String>);

    let toggle = move |app: App| {
        let enabled = !app.enabled;
        if !enabled && !confirm_disable(&app) {
            return;
        }
        leptos::task::spawn_local(async move {
            match set_enabled(&app, enabled).await {
                Ok(_) => {
                    action_error.set(None);
                    load();
                }
                Err(e) => action_error.set(Some(format!("Could not change {}: {e}", app.name))),
            }
        });
    };

    view! {
        <section>
            <h1>"Apps"</h1>
            <p class="lede">
                "Each app has its own credentials, settings and limits. Changes apply at once, "
                "to that app only."
            </p>
            <ErrorNote error=action_error />
            {move || match apps.get() {
                None => view! { <LoadingNote what="your apps" /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">"Could not load your apps: " {e.message}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! {
                    <p class="empty">"No apps yet. Create your first one below."</p>
                }.into_any(),
                Some(Ok(list)) => view! { <AppsTable apps=list toggle=toggle /> }.into_any(),
            }}
            <CreateApp />
            <super::import::ImportApps on_done=load />
        </section>
    }
}

#[component]
fn AppsTable(apps: Vec<App>, toggle: impl Fn(App) + Copy + Send + Sync + 'static) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="apps">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col" class="wide-only">"App ID"</th>
                        <th scope="col" class="wide-only">"Key"</th>
                        <th scope="col">"Enabled"</th>
                        <th scope="col" class="num">"Connections"</th>
                    </tr>
                </thead>
                <tbody>
                    {apps
                        .into_iter()
                        .map(|app| {
                            let href = format!("{}/apps/{}", crate::BASE, app.id);
                            let label = format!("{} enabled", app.name);
                            let enabled = app.enabled;
                            let row_app = app.clone();
                            view! {
                                <tr data-app-id=app.id.clone()>
                                    <td><A href=href>{app.name.clone()}</A></td>
                                    <td class="wide-only"><code>{app.id.clone()}</code></td>
                                    <td class="wide-only"><code>{app.key.clone()}</code></td>
                                    <td>
                                        <label class="switch">
                                            <input
                                                type="checkbox"
                                                role="switch"
                                                aria-label=label
                                                prop:checked=enabled
                                                on:click=move |ev| {
                                                    // The list re-renders from the server's answer.
                                                    ev.prevent_default();
                                                    toggle(row_app.clone());
                                                }
                                            />
                                            <span>{if enabled { "On" } else { "Off" }}</span>
                                        </label>
                                    </td>
                                    <td class="num connections">{app.connections}
                                        {app.usage.over_quota.map(|_| view! {
                                            <span class="badge off over-quota" title="API events are refused until the quota resets">"over quota"</span>
                                        })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// A chosen credential, or `None` when the field is left empty (the server generates it).
fn chosen(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// What is wrong with the kept credentials, checked with the server's own rules.
fn credentials_problem(id: &str, key: &str, secret: &str) -> Option<String> {
    let checks = [
        chosen(id).map(|v| credentials::check_id(&v)),
        chosen(key).map(|v| credentials::check_key(&v)),
        chosen(secret).map(|v| credentials::check_secret(&v)),
    ];
    checks
        .into_iter()
        .flatten()
        .find_map(Result::err)
        .map(|e| format!("App {}", e.message))
}

#[component]
fn CreateApp() -> impl IntoView {
    let name = RwSignal::new(String::new());
    let id = RwSignal::new(String::new());
    let key = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let problem = name_problem(&name.get_untracked()).or_else(|| {
            credentials_problem(
                &id.get_untracked(),
                &key.get_untracked(),
                &secret.get_untracked(),
            )
        });
        error.set(problem.clone());
        if problem.is_some() {
            return;
        }
        busy.set(true);
        let request = NewApp {
            name: name.get_untracked().trim().to_owned(),
            id: chosen(&id.get_untracked()),
            key: chosen(&key.get_untracked()),
            secret: chosen(&secret.get_untracked()),
            ..NewApp::default()
        };
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match api::post::<_, App>("/apps", &request).await {
                Ok(app) => navigate(&format!("/apps/{}", app.id), NavigateOptions::default()),
                Err(e) if e.status == 409 => {
                    let field = if e.field.as_deref() == Some("id") {
                        "app ID"
                    } else {
                        "key"
                    };
                    error.set(Some(format!(
                        "Another app has this {field} already. Choose another {field}, or \
                         import the app to update the one you have."
                    )));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="inline card" on:submit=submit novalidate>
            <h2>"Create an app"</h2>
            <label for="new-app-name">"Name"</label>
            <div class="row">
                <input id="new-app-name" name="name" placeholder="My app" bind:value=name />
                <button type="submit" disabled=busy>
                    {move || if busy.get() { "Creating…" } else { "Create app" }}
                </button>
            </div>
            <details class="credentials">
                <summary>"Use existing credentials"</summary>
                <p class="hint">
                    "Moving from Pusher, soketi, Reverb or laravel-websockets? Keep the app's id, "
                    "key and secret and no client needs a change. Leave a field empty to have it "
                    "generated."
                </p>
                <label for="new-app-id">"App ID"</label>
                <input id="new-app-id" name="id" autocomplete="off" spellcheck="false"
                    maxlength=credentials::MAX_ID.to_string() bind:value=id />
                <label for="new-app-key">"Key"</label>
                <input id="new-app-key" name="key" autocomplete="off" spellcheck="false"
                    maxlength=credentials::MAX_KEY.to_string() bind:value=key />
                <label for="new-app-secret">"Secret"</label>
                <input id="new-app-secret" name="secret" type="password" autocomplete="new-password"
                    maxlength=credentials::MAX_SECRET.to_string() bind:value=secret />
            </details>
            <ErrorNote error=error />
        </form>
    }
}
