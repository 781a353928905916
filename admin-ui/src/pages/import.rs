//! Importing apps from another server's file: choose the file (or paste it), check it (a dry
//! run shows what would be created, updated or left alone, and what cannot be mapped), then
//! import. The server decides everything (`POST /apps/import`); the panel only shows the plan.

use leptos::prelude::*;
use shared::transfer::{Format, ImportAction, ImportReport, ImportRequest};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::api;
use crate::ui::ErrorNote;

/// The text of the file chosen in `<input type=file>`, if any.
async fn file_text(input: web_sys::HtmlInputElement) -> Option<String> {
    let file = input.files()?.get(0)?;
    JsFuture::from(file.text()).await.ok()?.as_string()
}

fn action_label(action: ImportAction) -> &'static str {
    match action {
        ImportAction::Create => "Create",
        ImportAction::Update => "Update",
        ImportAction::Unchanged => "Unchanged",
        ImportAction::Conflict => "Conflict",
        ImportAction::Invalid => "Cannot import",
    }
}

/// The import form. `on_done` reloads the apps list after an import.
#[component]
pub fn ImportApps(on_done: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let format = RwSignal::new(String::new());
    let plan = RwSignal::new(None::<ImportReport>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let send = move |dry_run: bool| {
        if text.with_untracked(|t| t.trim().is_empty()) {
            error.set(Some("Choose a file, or paste its content.".into()));
            return;
        }
        let request = ImportRequest {
            text: text.get_untracked(),
            format: Format::parse(&format.get_untracked()),
            dry_run,
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::post::<_, ImportReport>("/apps/import", &request).await {
                Ok(report) => {
                    if report.applied {
                        on_done();
                    }
                    plan.set(Some(report));
                }
                Err(e) => {
                    plan.set(None);
                    error.set(Some(e.message));
                }
            }
            busy.set(false);
        });
    };
    let choose = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        leptos::task::spawn_local(async move {
            match file_text(input).await {
                Some(content) => {
                    text.set(content);
                    plan.set(None);
                    error.set(None);
                }
                None => error.set(Some("The file could not be read as text.".into())),
            }
        });
    };
    let pending = move || {
        plan.with(|p| {
            p.as_ref().is_some_and(|p| {
                !p.applied
                    && p.problems() == 0
                    && p.apps
                        .iter()
                        .any(|a| matches!(a.action, ImportAction::Create | ImportAction::Update))
            })
        })
    };

    view! {
        <form class="card import" on:submit=move |ev| { ev.prevent_default(); send(true); } novalidate>
            <h2>"Import apps"</h2>
            <p class="hint">
                "From soketi, sockudo, Laravel Reverb, laravel-websockets or a CSV of Pusher apps "
                "(id,key,secret,name). Apps keep their credentials; an app whose id exists is updated."
            </p>
            <label for="import-file">"File"</label>
            <input id="import-file" type="file" on:change=choose />
            <label for="import-text">"Content"</label>
            <textarea id="import-text" rows="6" spellcheck="false" bind:value=text
                on:input=move |_| plan.set(None)></textarea>
            <label for="import-format">"Format"</label>
            <select id="import-format" bind:value=format>
                <option value="">"Detect from the content"</option>
                {Format::ALL
                    .into_iter()
                    .map(|f| view! { <option value=f.name()>{f.label()}</option> })
                    .collect_view()}
            </select>
            <div class="row">
                <button type="submit" disabled=busy>"Check"</button>
                <Show when=pending>
                    <button type="button" id="import-apply" disabled=busy on:click=move |_| send(false)>
                        "Import"
                    </button>
                </Show>
            </div>
            <ErrorNote error=error />
            {move || plan.get().map(|report| view! { <Plan report=report /> })}
        </form>
    }
}

/// The plan or the result of an import, one row per app.
#[component]
fn Plan(report: ImportReport) -> impl IntoView {
    let summary = if report.applied {
        "Imported.".to_owned()
    } else if report.problems() > 0 {
        format!(
            "{} app(s) cannot be imported as they are: fix the file or leave them out. Nothing was changed.",
            report.problems()
        )
    } else {
        format!(
            "Read as {}. Nothing is changed until you import.",
            report.format.label()
        )
    };
    view! {
        <p class="plan-summary" role="status">{summary}</p>
        <div class="table-wrap">
            <table class="plan">
                <thead>
                    <tr>
                        <th scope="col">"What"</th>
                        <th scope="col">"App ID"</th>
                        <th scope="col">"Key"</th>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Details"</th>
                    </tr>
                </thead>
                <tbody>
                    {report
                        .apps
                        .into_iter()
                        .map(|app| {
                            let class = if app.action.is_problem() { "problem" } else { "" };
                            let row_id = app.id.clone();
                            let changes = (!app.changes.is_empty())
                                .then(|| format!("Changes: {}", app.changes.join(", ")));
                            view! {
                                <tr class=class data-app-id=row_id>
                                    <td class="action">{action_label(app.action)}</td>
                                    <td><code>{app.id}</code></td>
                                    <td><code>{app.key}</code></td>
                                    <td>{app.name}</td>
                                    <td>
                                        {app.message.map(|m| view! { <p class="error">{m}</p> })}
                                        {changes.map(|c| view! { <p>{c}</p> })}
                                        {(!app.unmapped.is_empty()).then(|| view! {
                                            <p>"Not imported:"</p>
                                            <ul class="unmapped">
                                                {app.unmapped.into_iter().map(|u| view! { <li>{u}</li> }).collect_view()}
                                            </ul>
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
