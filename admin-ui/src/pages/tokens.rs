//! API tokens for automation: list, create (the value is shown once) and revoke.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use shared::admin::{ApiToken, CreatedApiToken, NewApiToken, MAX_NAME};

use crate::api;
use crate::ui::{confirm, datetime, maybe_datetime, remote, CopyButton, ErrorNote, LoadingNote};

#[component]
pub fn TokensPage() -> impl IntoView {
    let (tokens, load) = remote::<Vec<ApiToken>>(|| "/tokens".to_owned());
    load();
    let error = RwSignal::new(None::<String>);
    let name = RwSignal::new(String::new());
    let created = RwSignal::new(None::<CreatedApiToken>);

    let revoke = move |token: ApiToken| {
        if !confirm(&format!(
            "Revoke \"{}\"? Scripts using it stop working at once.",
            token.name
        )) {
            return;
        }
        leptos::task::spawn_local(async move {
            match api::delete(&format!("/tokens/{}", token.id)).await {
                Ok(()) => {
                    error.set(None);
                    load();
                }
                Err(e) => error.set(Some(format!("Not revoked: {e}"))),
            }
        });
    };
    let create = move |ev: SubmitEvent| {
        ev.prevent_default();
        let value = name.get_untracked().trim().to_owned();
        if value.is_empty() || value.chars().count() > MAX_NAME {
            error.set(Some(format!(
                "Name the token (at most {MAX_NAME} characters), for example \"deploy script\"."
            )));
            return;
        }
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::post::<_, CreatedApiToken>("/tokens", &NewApiToken { name: value }).await {
                Ok(token) => {
                    created.set(Some(token));
                    name.set(String::new());
                    load();
                }
                Err(e) => error.set(Some(format!("No token was created: {e}"))),
            }
        });
    };

    view! {
        <section>
            <h1>"API tokens"</h1>
            <p class="lede">
                "Tokens let scripts use the admin API: send "
                <code>"Authorization: Bearer <token>"</code>
                ". A token acts as the user who created it."
            </p>
            <ErrorNote error=error />
            {move || created.get().map(|token| {
                let value = token.token.clone();
                view! {
                    <div class="card notice" role="status">
                        <h2>"Your new token"</h2>
                        <p>"Copy it now: it is not shown again."</p>
                        <p class="secret-value"><code id="new-token">{token.token.clone()}</code>
                            <CopyButton text=Signal::derive(move || value.clone()) label="Copy token" /></p>
                    </div>
                }
            })}
            {move || match tokens.get() {
                None => view! { <LoadingNote what="tokens" /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">"Could not load tokens: " {e.message}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="empty">"No tokens yet."</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <div class="table-wrap">
                        <table>
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Created"</th>
                                    <th scope="col">"Last used"</th>
                                    <th scope="col">"State"</th>
                                    <th scope="col"><span class="sr-only">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|token| {
                                    let revoked = token.revoked_at.is_some();
                                    let for_revoke = token.clone();
                                    view! {
                                        <tr>
                                            <td>{token.name.clone()}</td>
                                            <td>{datetime(token.created_at)}</td>
                                            <td>{maybe_datetime(token.last_used_at)}</td>
                                            <td>{if revoked { format!("Revoked {}", maybe_datetime(token.revoked_at)) } else { "Active".to_owned() }}</td>
                                            <td class="actions">
                                                {(!revoked).then(|| view! {
                                                    <button type="button" class="warn" on:click=move |_| revoke(for_revoke.clone())>"Revoke"</button>
                                                })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
            <form class="card inline" on:submit=create novalidate>
                <h2>"Create a token"</h2>
                <label for="token-name">"Name"</label>
                <div class="row">
                    <input id="token-name" placeholder="deploy script" bind:value=name />
                    <button type="submit">"Create token"</button>
                </div>
            </form>
        </section>
    }
}
