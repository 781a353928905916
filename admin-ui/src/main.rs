//! The Reverb Pusher admin panel: a client-side Leptos app served by the server under `/admin`,
//! talking to the admin JSON API on the same origin.
//!
//! This module owns the shell: the session check at start (first-run setup, login), the
//! navigation and the route table. Pages live in `pages/`.

// Leptos components take their props by value and are named in PascalCase by design.
#![allow(clippy::needless_pass_by_value, non_snake_case)]

mod api;
mod charts;
mod pages;
mod ui;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::hooks::{use_location, use_navigate};
use leptos_router::path;
use leptos_router::NavigateOptions;
use shared::admin::{SessionInfo, SetupStatus};

/// Where the panel is served. `navigate` adds it itself; `<A href>` takes absolute paths
/// as they are, so links spell it out.
pub const BASE: &str = "/admin";

/// Who is signed in, and whether that is known yet.
#[derive(Clone, Copy)]
pub struct Auth {
    pub session: RwSignal<Option<SessionInfo>>,
    /// The start-up checks (setup needed? signed in?) have answered.
    pub checked: RwSignal<bool>,
    pub setup_needed: RwSignal<bool>,
    /// The start-up checks failed (server unreachable).
    pub failure: RwSignal<Option<String>>,
}

impl Auth {
    pub fn user_id(&self) -> Option<String> {
        self.session.with(|s| s.as_ref().map(|s| s.user.id.clone()))
    }
}

#[component]
fn App() -> impl IntoView {
    let auth = Auth {
        session: RwSignal::new(None),
        checked: RwSignal::new(false),
        setup_needed: RwSignal::new(false),
        failure: RwSignal::new(None),
    };
    provide_context(auth);
    api::install(auth.session);
    leptos::task::spawn_local(async move {
        match api::get::<SetupStatus>("/setup").await {
            Ok(status) => {
                auth.setup_needed.set(status.needed);
                if !status.needed {
                    if let Ok(info) = api::get::<SessionInfo>("/me").await {
                        api::set_session(Some(info));
                    }
                }
            }
            Err(e) => auth.failure.set(Some(e.message)),
        }
        auth.checked.set(true);
    });
    view! {
        <Router base=BASE>
            <Shell />
        </Router>
    }
}

/// Sends visitors to setup or login when needed, and lays out the page.
#[component]
fn Shell() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let navigate = use_navigate();
    let location = use_location();
    Effect::new(move || {
        if !auth.checked.get() {
            return;
        }
        let path = location.pathname.get();
        let on_setup = path.ends_with("/setup");
        let on_login = path.ends_with("/login");
        if auth.setup_needed.get() {
            if !on_setup {
                navigate("/setup", NavigateOptions::default());
            }
        } else if auth.session.get().is_none() {
            if !on_login {
                navigate("/login", NavigateOptions::default());
            }
        } else if on_setup || on_login {
            navigate("/", NavigateOptions::default());
        }
    });
    view! {
        <a class="skip" href="#main">"Skip to content"</a>
        <Show when=move || auth.session.with(Option::is_some)>
            <Nav />
        </Show>
        <main id="main">
            <Show
                when=move || auth.checked.get()
                fallback=|| view! { <ui::LoadingNote what="the admin panel" /> }
            >
                <ui::ErrorNote error=auth.failure />
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("/setup") view=pages::auth::SetupPage />
                    <Route path=path!("/login") view=pages::auth::LoginPage />
                    <Route path=path!("/") view=|| view! { <RequireLogin><pages::dashboard::DashboardPage /></RequireLogin> } />
                    <Route path=path!("/apps") view=|| view! { <RequireLogin><pages::apps::AppsPage /></RequireLogin> } />
                    <Route path=path!("/apps/:id") view=|| view! { <RequireLogin><pages::app::AppPage tab=pages::app::Tab::Overview /></RequireLogin> } />
                    <Route path=path!("/apps/:id/settings") view=|| view! { <RequireLogin><pages::app::AppPage tab=pages::app::Tab::Settings /></RequireLogin> } />
                    <Route path=path!("/apps/:id/stats") view=|| view! { <RequireLogin><pages::app::AppPage tab=pages::app::Tab::Stats /></RequireLogin> } />
                    <Route path=path!("/apps/:id/console") view=|| view! { <RequireLogin><pages::app::AppPage tab=pages::app::Tab::Console /></RequireLogin> } />
                    <Route path=path!("/apps/:id/webhooks") view=|| view! { <RequireLogin><pages::app::AppPage tab=pages::app::Tab::Webhooks /></RequireLogin> } />
                    <Route path=path!("/users") view=|| view! { <RequireLogin><pages::users::UsersPage /></RequireLogin> } />
                    <Route path=path!("/tokens") view=|| view! { <RequireLogin><pages::tokens::TokensPage /></RequireLogin> } />
                    <Route path=path!("/audit") view=|| view! { <RequireLogin><pages::audit::AuditPage /></RequireLogin> } />
                    <Route path=path!("/cluster") view=|| view! { <RequireLogin><pages::cluster::ClusterPage /></RequireLogin> } />
                </Routes>
            </Show>
        </main>
    }
}

/// Renders its children only for a signed-in user (the shell redirects everyone else).
#[component]
fn RequireLogin(children: ChildrenFn) -> impl IntoView {
    let auth = expect_context::<Auth>();
    view! { <Show when=move || auth.session.with(Option::is_some)>{children()}</Show> }
}

#[component]
fn Nav() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let navigate = use_navigate();
    let logout = move |_| {
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            // Logged out locally even if the server cannot be reached.
            let _ = api::post::<_, ()>("/logout", &()).await;
            api::set_session(None);
            navigate("/login", NavigateOptions::default());
        });
    };
    let name = move || {
        auth.session
            .with(|s| s.as_ref().map(|s| s.user.name.clone()))
    };
    view! {
        <header class="topbar">
            <A href="/admin" attr:class="brand">"Reverb Pusher"</A>
            <nav aria-label="Main">
                <A href="/admin" exact=true>"Dashboard"</A>
                <A href="/admin/apps" exact=true>"Apps"</A>
                <A href="/admin/users">"Users"</A>
                <A href="/admin/tokens">"API tokens"</A>
                <A href="/admin/audit">"Audit log"</A>
                <A href="/admin/cluster">"Cluster"</A>
            </nav>
            <div class="account">
                <span class="who">{name}</span>
                <button type="button" class="secondary" on:click=logout>"Log out"</button>
            </div>
        </header>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <section>
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. " <A href="/admin">"Go to your apps"</A> "."</p>
        </section>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
