//! First-run setup (with the one-time token shown on the server's terminal) and login.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use shared::admin::{LoginRequest, SessionInfo, SetupRequest, MAX_PASSWORD, MIN_PASSWORD};

use crate::api;
use crate::ui::ErrorNote;
use crate::Auth;

/// Checks an email address the way the server does, roughly, before sending.
pub fn email_problem(email: &str) -> Option<String> {
    let email = email.trim();
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
    });
    (!valid).then(|| "Enter an email address such as you@example.com.".to_owned())
}

pub fn password_problem(password: &str) -> Option<String> {
    let len = password.chars().count();
    if len < MIN_PASSWORD {
        Some(format!(
            "The password needs at least {MIN_PASSWORD} characters."
        ))
    } else if len > MAX_PASSWORD {
        Some(format!(
            "The password can have at most {MAX_PASSWORD} characters."
        ))
    } else {
        None
    }
}

#[component]
pub fn SetupPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let token = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let problem = if token.get_untracked().trim().is_empty() {
            Some("Paste the setup token from the server's terminal.".to_owned())
        } else if name.get_untracked().trim().is_empty() {
            Some("Enter your name.".to_owned())
        } else if let Some(p) = email_problem(&email.get_untracked()) {
            Some(p)
        } else if let Some(p) = password_problem(&password.get_untracked()) {
            Some(p)
        } else if password.get_untracked() != repeat.get_untracked() {
            Some("The two passwords differ.".to_owned())
        } else {
            None
        };
        error.set(problem.clone());
        if problem.is_some() {
            return;
        }
        busy.set(true);
        let request = SetupRequest {
            token: token.get_untracked().trim().to_owned(),
            email: email.get_untracked().trim().to_owned(),
            name: name.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
        };
        leptos::task::spawn_local(async move {
            match api::post::<_, SessionInfo>("/setup", &request).await {
                Ok(info) => {
                    auth.setup_needed.set(false);
                    api::set_session(Some(info));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };

    view! {
        <section class="narrow">
            <h1>"Welcome to Reverb Pusher"</h1>
            <p>
                "Create the first admin account. The setup token is shown on the server's terminal "
                "(standard error, not the log) when it starts without any account (look for "
                <code>"Admin setup token"</code>"), or, when the server runs without a terminal, "
                "in the file "<code>"setup-token"</code>" beside its master key. It works for an "
                "hour; after that, reloading this page issues a new one."
            </p>
            <form on:submit=submit novalidate>
                <label for="setup-token">"Setup token"</label>
                <input id="setup-token" name="token" autocomplete="off" bind:value=token />
                <label for="setup-name">"Your name"</label>
                <input id="setup-name" name="name" autocomplete="name" bind:value=name />
                <label for="setup-email">"Email"</label>
                <input id="setup-email" name="email" type="email" autocomplete="email" bind:value=email />
                <label for="setup-password">"Password"</label>
                <input id="setup-password" name="password" type="password" autocomplete="new-password" bind:value=password />
                <label for="setup-repeat">"Password again"</label>
                <input id="setup-repeat" name="repeat" type="password" autocomplete="new-password" bind:value=repeat />
                <ErrorNote error=error />
                <button type="submit" disabled=busy>
                    {move || if busy.get() { "Creating…" } else { "Create account" }}
                </button>
            </form>
        </section>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let problem = email_problem(&email.get_untracked()).or_else(|| {
            password
                .get_untracked()
                .is_empty()
                .then(|| "Enter your password.".to_owned())
        });
        error.set(problem.clone());
        if problem.is_some() {
            return;
        }
        busy.set(true);
        let request = LoginRequest {
            email: email.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
        };
        leptos::task::spawn_local(async move {
            match api::post::<_, SessionInfo>("/login", &request).await {
                Ok(info) => api::set_session(Some(info)),
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };

    view! {
        <section class="narrow">
            <h1>"Log in"</h1>
            <form on:submit=submit novalidate>
                <label for="login-email">"Email"</label>
                <input id="login-email" name="email" type="email" autocomplete="username" bind:value=email />
                <label for="login-password">"Password"</label>
                <input id="login-password" name="password" type="password" autocomplete="current-password" bind:value=password />
                <ErrorNote error=error />
                <button type="submit" disabled=busy>
                    {move || if busy.get() { "Logging in…" } else { "Log in" }}
                </button>
            </form>
            <p class="hint">
                "Forgot your password? Another admin can set a new one on the Users page, or you "
                "can make a new account on the server with "<code>"reverb-pusher user create"</code>"."
            </p>
        </section>
    }
}
