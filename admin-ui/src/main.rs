//! The Reverb Pusher admin panel (client-side Leptos). This first version is a landing page;
//! the panel itself (apps, users, tokens, debug console) is built on the admin API.

use leptos::prelude::*;

/// The landing page shown until the admin panel proper lands.
#[component]
fn App() -> impl IntoView {
    view! {
        <main>
            <h1>"Reverb Pusher"</h1>
            <p>"The server is running. Point pusher-js or a Pusher server SDK at this host."</p>
            <p>
                "List your apps' credentials with "
                <code>"reverb-pusher app list --secrets"</code>
                " and create one with "
                <code>"reverb-pusher app create --name NAME"</code>
                "."
            </p>
        </main>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
