//! A small SVG time-series chart (no JavaScript chart library): lines over a 1-2-5 grid, a
//! readout of the bucket under the pointer (mouse, pen or touch) or chosen with the arrow
//! keys, a text label for screen readers, and empty and loading states. The arithmetic lives
//! in `shared::chart`, tested on the host.

use leptos::prelude::*;
use shared::chart::{self, Scale, BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH};

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: &'static str,
    /// A CSS class giving its colour.
    pub class: &'static str,
    pub points: Vec<(i64, Option<f64>)>,
}

/// What a chart shows: its lines and their step, or why there is nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartData {
    Loading,
    Failed(String),
    Lines { step: i64, lines: Vec<Line> },
}

/// How values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
}

fn label(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count => chart::count(v),
        Unit::Bytes => chart::bytes(v),
    }
}

/// A time-series chart. `id` names it for tests and links.
#[component]
pub fn TimeSeriesChart(
    #[prop(into)] id: String,
    #[prop(into)] title: String,
    unit: Unit,
    #[prop(into)] data: Signal<ChartData>,
) -> impl IntoView {
    let cursor = RwSignal::new(None::<usize>);
    let readout_id = format!("{id}-readout");
    let title_for_label = title.clone();
    view! {
        <figure class="chart" id=id.clone()>
            <figcaption>{title.clone()}</figcaption>
            {move || match data.get() {
                ChartData::Loading => view! { <p class="loading" role="status">"Loading…"</p> }.into_any(),
                ChartData::Failed(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
                ChartData::Lines { step, lines } => {
                    let times: Vec<i64> = lines.first().map(|l| l.points.iter().map(|p| p.0).collect()).unwrap_or_default();
                    let has_data = lines.iter().any(|l| l.points.iter().any(|(_, v)| v.is_some_and(|v| v > 0.0)));
                    if times.is_empty() || !has_data {
                        return view! { <p class="empty">"No data for this period yet."</p> }.into_any();
                    }
                    plot(&title_for_label, unit, step, &lines, &times, cursor, &readout_id).into_any()
                }
            }}
        </figure>
    }
}

#[allow(clippy::too_many_lines)]
fn plot(
    title: &str,
    unit: Unit,
    step: i64,
    lines: &[Line],
    times: &[i64],
    cursor: RwSignal<Option<usize>>,
    readout_id: &str,
) -> impl IntoView {
    let from = times[0];
    let to = *times.last().unwrap_or(&from) + step;
    let max = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .fold(0.0, f64::max);
    let ticks = chart::ticks(max, 4);
    let scale = Scale::new(from, to, *ticks.last().unwrap_or(&1.0));
    let peak = lines.first().map(|l| {
        l.points
            .iter()
            .filter_map(|(t, v)| v.map(|v| (*t, v)))
            .fold((from, 0.0), |best, p| if p.1 > best.1 { p } else { best })
    });
    let aria = match peak {
        Some((t, v)) => format!(
            "{title}: {} points, highest {} at {} UTC",
            times.len(),
            label(unit, v),
            chart::time_label(t, step)
        ),
        None => title.to_owned(),
    };
    let grid = ticks
        .iter()
        .map(|v| {
            let y = scale.y(*v);
            view! {
                <line class="grid" x1=LEFT y1=y x2=WIDTH - RIGHT y2=y />
                <text class="tick" x=LEFT - 4.0 y=y + 3.0 text-anchor="end">{label(unit, *v)}</text>
            }
        })
        .collect_view();
    let labels = [0, times.len() / 2, times.len() - 1]
        .into_iter()
        .map(|i| {
            let t = times[i.min(times.len() - 1)];
            view! { <text class="tick" x=scale.x(t) y=HEIGHT - 6.0 text-anchor="middle">{chart::time_label(t, step)}</text> }
        })
        .collect_view();
    let paths = lines
        .iter()
        .map(|l| {
            let points: Vec<(i64, Option<f64>)> =
                l.points.iter().map(|(t, v)| (*t + step / 2, *v)).collect();
            let dots = (points.iter().filter(|p| p.1.is_some()).count() <= 90).then(|| {
                points
                    .iter()
                    .filter_map(|(t, v)| v.map(|v| (scale.x(*t), scale.y(v))))
                    .map(|(x, y)| view! { <circle class=format!("dot {}", l.class) cx=x cy=y r="2" /> })
                    .collect_view()
            });
            view! {
                <path class=format!("line {}", l.class) d=chart::path(&points, &scale) fill="none" />
                {dots}
            }
        })
        .collect_view();
    let times_for_move = times.to_vec();
    let times_for_key = times.len();
    let on_move = move |e: web_sys::PointerEvent| {
        let Some(target) = e
            .current_target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
        else {
            return;
        };
        let rect = target.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            return;
        }
        let x =
            LEFT + (f64::from(e.client_x()) - rect.left()) / rect.width() * (WIDTH - LEFT - RIGHT);
        let t = scale.time_at(x) - step / 2;
        cursor.set(chart::nearest(&times_for_move, t));
    };
    let on_key = move |e: web_sys::KeyboardEvent| {
        let last = times_for_key.saturating_sub(1);
        let next = match (e.key().as_str(), cursor.get_untracked()) {
            ("ArrowRight", Some(i)) => Some((i + 1).min(last)),
            ("ArrowLeft", Some(i)) => Some(i.saturating_sub(1)),
            ("ArrowRight" | "ArrowLeft" | "End", None) | ("End", _) => Some(last),
            ("Home", _) => Some(0),
            ("Escape", _) => None,
            _ => return,
        };
        e.prevent_default();
        cursor.set(next);
    };
    let lines_for_readout = lines.to_vec();
    let times_for_readout = times.to_vec();
    let readout = move || {
        cursor.get().map(|i| {
            let t = times_for_readout[i];
            let values = lines_for_readout
                .iter()
                .map(|l| {
                    let v = l.points.get(i).and_then(|p| p.1);
                    format!(
                        "{} {}",
                        l.name,
                        v.map_or_else(|| "—".to_owned(), |v| label(unit, v))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{} UTC: {values}", chart::time_label(t, step.min(3599)))
        })
    };
    let lines_for_guide = times.to_vec();
    let guide = move || {
        cursor.get().map(|i| {
            let x = scale.x(lines_for_guide[i] + step / 2);
            view! { <line class="guide" x1=x y1=TOP x2=x y2=HEIGHT - BOTTOM /> }
        })
    };
    let legend = lines
        .iter()
        .map(|l| view! { <span class=format!("key {}", l.class)>{l.name}</span> })
        .collect_view();
    view! {
        <p class="readout" id=readout_id.to_owned() aria-live="polite">
            {move || readout().unwrap_or_else(|| "Point at the chart (or focus it and use the arrow keys) for values.".into())}
        </p>
        <svg
            viewBox=format!("0 0 {WIDTH} {HEIGHT}")
            width="100%"
            role="img"
            aria-label=aria
            tabindex="0"
            on:keydown=on_key
        >
            {grid}
            {labels}
            {paths}
            {guide}
            <rect
                class="hover"
                x=LEFT
                y=TOP
                width=WIDTH - LEFT - RIGHT
                height=HEIGHT - TOP - BOTTOM
                fill="transparent"
                on:pointermove=on_move.clone()
                on:pointerdown=on_move
                on:pointerleave=move |_| cursor.set(None)
            />
        </svg>
        <p class="legend">{legend}</p>
    }
}
