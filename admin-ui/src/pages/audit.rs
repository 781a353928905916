//! The audit log: who changed what and when, newest first, a page at a time, with the state
//! before and after each change (secrets masked by the server).

use leptos::prelude::*;
use shared::admin::{AuditEntry, AuditPage};

use crate::api::{self, ApiError};
use crate::ui::{datetime, LoadingNote};

const PER_PAGE: u32 = 25;

fn pretty(value: Option<&serde_json::Value>) -> String {
    value.map_or_else(
        || "—".to_owned(),
        |v| serde_json::to_string_pretty(v).unwrap_or_default(),
    )
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let page = RwSignal::new(1u32);
    let loaded = RwSignal::new(None::<Result<AuditPage, ApiError>>);
    Effect::new(move || {
        let number = page.get();
        leptos::task::spawn_local(async move {
            let path = format!("/audit?page={number}&per_page={PER_PAGE}");
            loaded.set(Some(api::get::<AuditPage>(&path).await));
        });
    });
    view! {
        <section>
            <h1>"Audit log"</h1>
            <p class="lede">"Every change to apps, users and tokens, newest first."</p>
            {move || match loaded.get() {
                None => view! { <LoadingNote what="the audit log" /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">"Could not load the audit log: " {e.message}</p> }.into_any(),
                Some(Ok(result)) => {
                    let pages = result.total.div_ceil(u64::from(result.per_page)).max(1);
                    let current = result.page;
                    view! {
                        {if result.entries.is_empty() {
                            view! { <p class="empty">"No changes recorded yet."</p> }.into_any()
                        } else {
                            view! {
                                <div class="table-wrap">
                                    <table class="audit">
                                        <thead>
                                            <tr>
                                                <th scope="col">"When"</th>
                                                <th scope="col">"Who"</th>
                                                <th scope="col">"What"</th>
                                                <th scope="col">"Target"</th>
                                                <th scope="col">"Details"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {result.entries.into_iter().map(|e| view! { <Row entry=e /> }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }.into_any()
                        }}
                        <nav class="pager" aria-label="Audit log pages">
                            <button type="button" class="secondary" disabled=current <= 1
                                on:click=move |_| page.update(|p| *p = p.saturating_sub(1).max(1))>"Newer"</button>
                            <span>{format!("Page {current} of {pages} ({} changes)", result.total)}</span>
                            <button type="button" class="secondary" disabled=u64::from(current) >= pages
                                on:click=move |_| page.update(|p| *p += 1)>"Older"</button>
                        </nav>
                    }.into_any()
                }
            }}
        </section>
    }
}

#[component]
fn Row(entry: AuditEntry) -> impl IntoView {
    let before = pretty(entry.before.as_ref());
    let after = pretty(entry.after.as_ref());
    view! {
        <tr>
            <td>{datetime(entry.at)}</td>
            <td>{entry.actor}</td>
            <td><code>{entry.action}</code></td>
            <td>{entry.target_type} " " <code>{entry.target_id}</code></td>
            <td>
                <details>
                    <summary>"Before and after"</summary>
                    <div class="diff">
                        <div><h3>"Before"</h3><pre>{before}</pre></div>
                        <div><h3>"After"</h3><pre>{after}</pre></div>
                    </div>
                </details>
            </td>
        </tr>
    }
}
