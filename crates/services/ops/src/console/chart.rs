//! Charts drawn as SVG from the data, readable at a glance and by screen readers (each
//! has a label and its figures are in a table beside it). Floating point only places
//! marks on the canvas; the figures people read stay exact in the tables.

use maud::{Markup, html};

const W: f64 = 640.0;
const H: f64 = 180.0;
const LEFT: f64 = 44.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// One line of a chart: its name, its CSS class (the colour) and its points, each a
/// label for the x axis and a value.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub points: Vec<(String, f64)>,
}

/// Lines over the same x labels, from 0 to `max` (at least 1).
pub(crate) fn lines(label: &str, series: &[Series<'_>], max: f64, unit: &str) -> Markup {
    let n = series
        .iter()
        .map(|s| s.points.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let max = if max > 0.0 { max } else { 1.0 };
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
    let labels: Vec<&str> = series
        .first()
        .map(|s| s.points.iter().map(|(l, _)| l.as_str()).collect())
        .unwrap_or_default();
    let every = labels.len().div_ceil(8).max(1);
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
                @for frac in [0.0, 0.5, 1.0] {
                    line.grid x1=(LEFT) x2=(LEFT + plot_w) y1=(fmt(y(max * frac))) y2=(fmt(y(max * frac))) {}
                    text.axis x=(LEFT - 4.0) y=(fmt(y(max * frac) + 4.0)) text-anchor="end" { (axis(max * frac)) (unit) }
                }
                @for (i, l) in labels.iter().enumerate() {
                    @if i % every == 0 {
                        text.axis x=(fmt(x(i))) y=(H - 8.0) text-anchor="middle" { (l) }
                    }
                }
                @for s in series {
                    polyline class=(format!("series {}", s.class)) points=(s.points.iter().enumerate().map(|(i, (_, v))| format!("{},{}", fmt(x(i)), fmt(y(*v)))).collect::<Vec<_>>().join(" ")) {
                        title { (s.name) }
                    }
                }
            }
            figcaption {
                @for s in series { span class=(format!("key {}", s.class)) { "■ " (s.name) } " " }
            }
        }
    }
}

/// Horizontal bars, one per item, scaled to the largest.
pub(crate) fn bars(label: &str, items: &[(String, u64, String)]) -> Markup {
    let max = items.iter().map(|(_, v, _)| *v).max().unwrap_or(0).max(1) as f64;
    let row = 22.0;
    let height = row * items.len().max(1) as f64 + 4.0;
    let left = 170.0;
    let span = W - left - 120.0;
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {height}")) role="img" aria-label=(label) {
                @for (i, (name, value, shown)) in items.iter().enumerate() {
                    @let top = 2.0 + row * i as f64;
                    text.axis x=(left - 6.0) y=(fmt(top + 15.0)) text-anchor="end" { (name) }
                    rect.bar x=(left) y=(fmt(top + 3.0)) height=(row - 6.0) width=(fmt(span * (*value as f64) / max)) {}
                    text.axis x=(fmt(left + span * (*value as f64) / max + 6.0)) y=(fmt(top + 15.0)) { (shown) }
                }
            }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

fn axis(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_is_drawn_inside_the_canvas() {
        let s = Series {
            name: "complete",
            class: "a",
            points: (0..31)
                .map(|d| (d.to_string(), f64::from(d) * 7.0))
                .collect(),
        };
        let svg = lines("test", &[s], 100.0, " %").into_string();
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|p| p.split('"').next())
            .expect("points");
        let coords: Vec<(f64, f64)> = points
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect();
        assert_eq!(coords.len(), 31);
        assert!(
            coords
                .iter()
                .all(|(x, y)| (0.0..=W).contains(x) && (0.0..=H).contains(y))
        );
        // Values above the maximum are drawn at the top, not off the chart.
        assert!((coords[30].1 - TOP).abs() < 0.01);
    }

    #[test]
    fn bars_scale_to_the_largest_and_escape_their_labels() {
        let svg = bars(
            "causes",
            &[("<b>".into(), 10, "10".into()), ("b".into(), 5, "5".into())],
        )
        .into_string();
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert_eq!(svg.matches("<rect").count(), 2);
    }
}
