//! Small pieces every page uses: copy buttons, error and loading notes, confirmations, and
//! times shown in the browser's locale.

use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use crate::api::{self, ApiError};
use serde::de::DeserializeOwned;

/// Something read from the API, and the function that (re)loads it. A failed reload keeps the
/// last good value on screen (the page shows its own error for the failed action).
///
/// Only the answer to the latest request is shown: a periodic refresh sent before a change can
/// answer after the reload that follows the change, and must not put the old list back.
pub fn remote<T>(
    path: impl Fn() -> String + Copy + 'static,
) -> (
    RwSignal<Option<Result<T, ApiError>>>,
    impl Fn() + Copy + 'static,
)
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    let value = RwSignal::new(None::<Result<T, ApiError>>);
    let latest = StoredValue::new(0u64);
    let load = move || {
        let path = path();
        latest.update_value(|n| *n += 1);
        let this = latest.get_value();
        leptos::task::spawn_local(async move {
            let result = api::get::<T>(&path).await;
            if latest.get_value() != this {
                return;
            }
            if result.is_ok() || value.with_untracked(|v| !matches!(v, Some(Ok(_)))) {
                value.set(Some(result));
            }
        });
    };
    (value, load)
}

/// A button that copies `text` to the clipboard and says whether it worked.
#[component]
pub fn CopyButton(
    #[prop(into)] text: Signal<String>,
    /// What is copied, for screen readers ("Copy key").
    #[prop(into)]
    label: String,
) -> impl IntoView {
    let state = RwSignal::new(None::<bool>);
    let copy = move |_| {
        let value = text.get_untracked();
        leptos::task::spawn_local(async move {
            let clipboard = window().navigator().clipboard();
            let ok = JsFuture::from(clipboard.write_text(&value)).await.is_ok();
            state.set(Some(ok));
            set_timeout(move || state.set(None), Duration::from_secs(2));
        });
    };
    view! {
        <button type="button" class="copy" aria-label=label.clone() title=label on:click=copy>
            {move || match state.get() {
                None => "Copy",
                Some(true) => "Copied!",
                Some(false) => "Select and press Ctrl+C",
            }}
        </button>
    }
}

/// An error sentence, announced to screen readers.
#[component]
pub fn ErrorNote(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|message| view! { <p class="error" role="alert">{message}</p> })
    }
}

/// A loading note.
#[component]
pub fn LoadingNote(#[prop(into)] what: String) -> impl IntoView {
    view! { <p class="loading" role="status">"Loading " {what} "…"</p> }
}

/// Asks the user to confirm a destructive action.
pub fn confirm(message: &str) -> bool {
    window().confirm_with_message(message).unwrap_or(false)
}

fn date(ms: f64) -> js_sys::Date {
    js_sys::Date::new(&JsValue::from_f64(ms))
}

/// Unix seconds as a local date and time.
pub fn datetime(unix_secs: i64) -> String {
    date(unix_secs as f64 * 1000.0)
        .to_locale_string("default", &JsValue::UNDEFINED)
        .into()
}

/// Unix milliseconds as a local clock time with milliseconds.
pub fn clock(unix_ms: i64) -> String {
    let d = date(unix_ms as f64);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds(),
        d.get_milliseconds()
    )
}

/// An optional time, or a dash.
pub fn maybe_datetime(unix_secs: Option<i64>) -> String {
    unix_secs.map_or_else(|| "—".to_owned(), datetime)
}
