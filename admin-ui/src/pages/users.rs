//! Admin users: list, add, edit (name, email, password) and remove. Every user is an admin;
//! your own account cannot be removed (the server refuses it too).

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use shared::admin::{NewUser, User, UserPatch, MAX_NAME};

use super::auth::{email_problem, password_problem};
use crate::api;
use crate::ui::{confirm, datetime, remote, ErrorNote, LoadingNote};
use crate::Auth;

fn user_problem(name: &str, email: &str, password: Option<&str>) -> Option<String> {
    if name.trim().is_empty() {
        Some("Enter a name.".to_owned())
    } else if name.trim().chars().count() > MAX_NAME {
        Some(format!("The name can have at most {MAX_NAME} characters."))
    } else if let Some(p) = email_problem(email) {
        Some(p)
    } else {
        password.and_then(password_problem)
    }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let (users, load) = remote::<Vec<User>>(|| "/users".to_owned());
    load();
    let editing = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);

    let remove = move |user: User| {
        if !confirm(&format!(
            "Remove {} ({})? They can no longer log in.",
            user.name, user.email
        )) {
            return;
        }
        leptos::task::spawn_local(async move {
            match api::delete(&format!("/users/{}", user.id)).await {
                Ok(()) => {
                    error.set(None);
                    load();
                }
                Err(e) => error.set(Some(format!("{} was not removed: {e}", user.name))),
            }
        });
    };

    view! {
        <section>
            <h1>"Users"</h1>
            <p class="lede">"Everyone here is an admin: they can manage every app and every user."</p>
            <ErrorNote error=error />
            {move || match users.get() {
                None => view! { <LoadingNote what="users" /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">"Could not load users: " {e.message}</p> }.into_any(),
                Some(Ok(list)) => {
                    let me = auth.user_id();
                    view! {
                        <div class="table-wrap">
                            <table class="users">
                                <thead>
                                    <tr>
                                        <th scope="col">"Name"</th>
                                        <th scope="col">"Email"</th>
                                        <th scope="col">"Added"</th>
                                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {list.into_iter().map(|user| {
                                        let is_me = me.as_deref() == Some(user.id.as_str());
                                        let id = user.id.clone();
                                        let edit_id = user.id.clone();
                                        let for_remove = user.clone();
                                        let for_edit = user.clone();
                                        view! {
                                            <tr data-email=user.email.clone()>
                                                <td>{user.name.clone()} {is_me.then(|| view! { <span class="badge">"you"</span> })}</td>
                                                <td>{user.email.clone()}</td>
                                                <td>{datetime(user.created_at)}</td>
                                                <td class="actions">
                                                    <button type="button" class="secondary"
                                                        on:click=move |_| editing.set(Some(edit_id.clone()))>"Edit"</button>
                                                    <button type="button" class="warn remove"
                                                        disabled=is_me
                                                        title=if is_me { "You cannot remove your own account" } else { "Remove this user" }
                                                        on:click=move |_| remove(for_remove.clone())>"Remove"</button>
                                                </td>
                                            </tr>
                                            {move || (editing.get().as_deref() == Some(id.as_str())).then(|| {
                                                let user = for_edit.clone();
                                                view! {
                                                    <tr class="editing">
                                                        <td colspan="4">
                                                            <EditUser user=user
                                                                done=move |changed| {
                                                                    editing.set(None);
                                                                    if changed { load(); }
                                                                } />
                                                        </td>
                                                    </tr>
                                                }
                                            })}
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        <p class="hint">"You cannot remove your own account; another admin can."</p>
                    }.into_any()
                }
            }}
            <AddUser added=load />
        </section>
    }
}

#[component]
fn EditUser(user: User, done: impl Fn(bool) + Copy + Send + Sync + 'static) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let name = RwSignal::new(user.name.clone());
    let email = RwSignal::new(user.email.clone());
    let password = RwSignal::new(String::new());
    let current_password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let id = user.id.clone();
    // Changing your own password needs the current one (the server checks it).
    let own = auth
        .session
        .with_untracked(|s| s.as_ref().is_some_and(|s| s.user.id == user.id));
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let new_password = password.get_untracked();
        let current = current_password.get_untracked();
        let problem = user_problem(
            &name.get_untracked(),
            &email.get_untracked(),
            (!new_password.is_empty()).then_some(new_password.as_str()),
        )
        .or_else(|| {
            (own && !new_password.is_empty() && current.is_empty())
                .then(|| "Enter your current password to set a new one.".to_owned())
        });
        error.set(problem.clone());
        if problem.is_some() {
            return;
        }
        let patch = UserPatch {
            name: Some(name.get_untracked().trim().to_owned()),
            email: Some(email.get_untracked().trim().to_owned()),
            current_password: (own && !new_password.is_empty()).then_some(current),
            password: (!new_password.is_empty()).then_some(new_password),
        };
        let id = id.clone();
        leptos::task::spawn_local(async move {
            match api::patch::<_, User>(&format!("/users/{id}"), &patch).await {
                Ok(updated) => {
                    // Your own name in the header follows the change.
                    auth.session.update(|s| {
                        if let Some(s) = s.as_mut().filter(|s| s.user.id == updated.id) {
                            s.user = updated.clone();
                        }
                    });
                    done(true);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    view! {
        <form class="inline" on:submit=submit novalidate>
            <div class="row wrap">
                <div class="field">
                    <label for="edit-name">"Name"</label>
                    <input id="edit-name" bind:value=name />
                </div>
                <div class="field">
                    <label for="edit-email">"Email"</label>
                    <input id="edit-email" type="email" bind:value=email />
                </div>
                <div class="field">
                    <label for="edit-password">"New password"</label>
                    <input id="edit-password" type="password" autocomplete="new-password" placeholder="unchanged" bind:value=password />
                </div>
                <Show when=move || own>
                    <div class="field">
                        <label for="edit-current-password">"Current password"</label>
                        <input id="edit-current-password" type="password" autocomplete="current-password" placeholder="needed for a new password" bind:value=current_password />
                    </div>
                </Show>
            </div>
            <ErrorNote error=error />
            <div class="row">
                <button type="submit">"Save"</button>
                <button type="button" class="secondary" on:click=move |_| done(false)>"Cancel"</button>
            </div>
        </form>
    }
}

#[component]
fn AddUser(added: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let ok = RwSignal::new(None::<String>);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        ok.set(None);
        let problem = user_problem(
            &name.get_untracked(),
            &email.get_untracked(),
            Some(&password.get_untracked()),
        );
        error.set(problem.clone());
        if problem.is_some() {
            return;
        }
        let request = NewUser {
            name: name.get_untracked().trim().to_owned(),
            email: email.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
        };
        leptos::task::spawn_local(async move {
            match api::post::<_, User>("/users", &request).await {
                Ok(user) => {
                    ok.set(Some(format!(
                        "{} can now log in as {}.",
                        user.name, user.email
                    )));
                    name.set(String::new());
                    email.set(String::new());
                    password.set(String::new());
                    added();
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    view! {
        <form class="card" on:submit=submit novalidate>
            <h2>"Add a user"</h2>
            <div class="row wrap">
                <div class="field">
                    <label for="new-user-name">"Name"</label>
                    <input id="new-user-name" autocomplete="off" bind:value=name />
                </div>
                <div class="field">
                    <label for="new-user-email">"Email"</label>
                    <input id="new-user-email" type="email" autocomplete="off" bind:value=email />
                </div>
                <div class="field">
                    <label for="new-user-password">"Password"</label>
                    <input id="new-user-password" type="password" autocomplete="new-password" bind:value=password />
                </div>
            </div>
            <ErrorNote error=error />
            {move || ok.get().map(|m| view! { <p class="ok" role="status">{m}</p> })}
            <button type="submit">"Add user"</button>
        </form>
    }
}
