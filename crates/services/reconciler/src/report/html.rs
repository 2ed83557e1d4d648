//! The month-end report as one self-contained HTML file (no scripts, fonts or images from
//! elsewhere) that a controller opens and prints: the figures side by side, two charts drawn
//! as inline SVG from the data, and every variance.

use std::fmt::Write as _;

use super::{Report, figure_rows};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;color:#1d2330;margin:2rem auto;max-width:68rem;padding:0 1rem}
h1{font-size:1.5rem;margin:0}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{padding:.25rem .5rem;border-bottom:1px solid #e3e6ee;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.off td{background:#fff1f0}
.kpi{display:flex;gap:1rem;flex-wrap:wrap}.kpi div{border:1px solid #ccd;border-radius:6px;padding:.5rem 1rem}.kpi b{display:block;font-size:1.4rem}
.muted{color:#667}svg{max-width:100%;height:auto}@media print{body{margin:0;max-width:none}h2{break-after:avoid}table,svg{break-inside:avoid}}";

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn money(currency: &str, minor: i64) -> String {
    ferry_domain::money::format_minor(minor, currency)
}

/// The report as HTML.
pub fn html(report: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!(
        "Reconciliation {} — {}",
        esc(&report.period),
        esc(&report.tenant)
    );
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head><body>"
    );
    let s = &report.standing;
    let _ = write!(
        h,
        "<h1>{title}</h1><p class=\"muted\">Orders placed {} to {} (Centra's order date), as the reconciler last checked them against Centra and the ERP.</p>
<div class=\"kpi\"><div>Checked<b>{}</b></div><div>Complete<b>{} %</b>{} in the ERP exactly once</div><div>Accurate<b>{} %</b>{} as charged</div><div>Pending<b>{}</b>inside their grace or held in Centra</div><div>Variances<b>{}</b></div></div>",
        report.first_day,
        report.last_day,
        s.checked,
        s.complete_pct,
        s.complete,
        s.accurate_pct,
        s.accurate,
        s.pending,
        report.variances.len()
    );
    figures(&mut h, report);
    h.push_str("<h2>Completeness and accuracy by day</h2>");
    h.push_str(&days_chart(report));
    timeliness(&mut h, report);
    h.push_str("<h2>Variances by cause</h2>");
    causes(&mut h, report);
    variances(&mut h, report);
    stock_drift(&mut h, report);
    h.push_str("</body></html>\n");
    h
}

fn figures(h: &mut String, report: &Report) {
    for c in &report.currencies {
        let _ = write!(
            h,
            "<h2>{} — Centra, ERP and Ferry's ledger</h2><table><tr><th>Figure</th><th class=\"n\">Centra charged</th><th class=\"n\">ERP holds</th><th class=\"n\">Ferry posted</th></tr>",
            esc(&c.currency)
        );
        for row in figure_rows(c) {
            let cell = |v: Option<i64>| match v {
                None => "<td class=\"n muted\">—</td>".to_owned(),
                Some(n) if row.count => format!("<td class=\"n\">{n}</td>"),
                Some(n) => format!("<td class=\"n\">{}</td>", esc(&money(&c.currency, n))),
            };
            // A figure the ERP or the ledger holds differently from Centra is shaded.
            let off = matches!(row.name.as_str(), "gross" | "tax" | "orders")
                && [row.erp, row.ledger]
                    .iter()
                    .any(|v| v.is_some_and(|v| Some(v) != row.centra));
            let _ = write!(
                h,
                "<tr{}><td>{}</td>{}{}{}</tr>",
                if off { " class=\"off\"" } else { "" },
                esc(&row.name.replace('_', " ")),
                cell(row.centra),
                cell(row.erp),
                cell(row.ledger)
            );
        }
        if c.refunds.is_none() {
            h.push_str(
                "<tr><td>refunds</td><td class=\"n muted\" colspan=\"3\">no return credited \
                 by Ferry in this period</td></tr>",
            );
        }
        h.push_str("</table>");
    }
    if report.currencies.is_empty() {
        h.push_str("<p>No order of this period has been checked yet.</p>");
    }
}

/// Two lines, complete % and accurate %, one point per day with orders.
pub fn days_chart(report: &Report) -> String {
    let (w, ht, left, top) = (720.0_f64, 220.0_f64, 48.0_f64, 12.0_f64);
    let plot_w = w - left - 12.0;
    let plot_h = ht - top - 32.0;
    let n = report.days.len().max(1) as f64;
    let x = |i: usize| left + plot_w * (i as f64 + 0.5) / n;
    // Chart coordinates only: the figures themselves stay exact in the tables.
    let y = |part: u64, whole: u64| {
        let ratio = if whole == 0 {
            1.0
        } else {
            part as f64 / whole as f64
        };
        top + plot_h * (1.0 - ratio)
    };
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"Completeness and accuracy by day\">"
    );
    for pct in [0u64, 50, 100] {
        let yy = y(pct, 100);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e3e6ee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{pct} %</text>",
            left + plot_w,
            left - 6.0,
            yy + 4.0
        );
    }
    // Complete is drawn wide beneath accurate: where the two agree, both stay visible.
    for (name, colour, width, pick) in [
        ("complete", "#90cdf4", 6, 0usize),
        ("accurate", "#c05621", 2, 1usize),
    ] {
        let points: Vec<String> = report
            .days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let part = if pick == 0 { d.complete } else { d.accurate };
                format!("{:.1},{:.1}", x(i), y(part, d.checked))
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\" points=\"{}\"><title>{name}</title></polyline>",
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"2.5\" fill=\"{colour}\"/>"
            );
        }
    }
    let label_every = report.days.len().div_ceil(10).max(1);
    for (i, d) in report.days.iter().enumerate() {
        if i % label_every == 0 {
            let label = d
                .day
                .map(|day| day.format("%d").to_string())
                .unwrap_or_default();
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
                x(i),
                ht - 12.0
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"{ht}\" font-size=\"11\" fill=\"#3182ce\">■ complete</text><text x=\"{}\" y=\"{ht}\" font-size=\"11\" fill=\"#c05621\">■ accurate</text></svg>",
        left + 90.0
    );
    svg
}

fn causes(h: &mut String, report: &Report) {
    if report.by_cause.is_empty() {
        h.push_str("<p>No variance: every checked order is in the ERP once, as charged.</p>");
        return;
    }
    let most = report
        .by_cause
        .iter()
        .map(|c| c.count)
        .max()
        .unwrap_or(1)
        .max(1);
    let row_h = 22.0_f64;
    let height = row_h * report.by_cause.len() as f64 + 8.0;
    let _ = write!(
        h,
        "<svg viewBox=\"0 0 720 {height}\" role=\"img\" aria-label=\"Variances by cause\">"
    );
    for (i, c) in report.by_cause.iter().enumerate() {
        let yy = 4.0 + row_h * i as f64;
        let width = 440.0 * c.count as f64 / most as f64;
        let _ = write!(
            h,
            "<text x=\"190\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text><rect x=\"200\" y=\"{yy:.1}\" width=\"{width:.1}\" height=\"16\" fill=\"#718096\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            yy + 12.0,
            esc(c.cause.as_str()),
            206.0 + width,
            yy + 12.0,
            c.count
        );
    }
    h.push_str("</svg><table><tr><th>Cause</th><th>Team</th><th class=\"n\">Variances</th><th class=\"n\">Money at stake</th></tr>");
    for c in &report.by_cause {
        let at_stake: Vec<String> = c
            .money
            .iter()
            .map(|(cur, minor)| esc(&money(cur, *minor)))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(c.cause.as_str()),
            esc(c.owner.as_str()),
            c.count,
            at_stake.join("<br>")
        );
    }
    h.push_str("</table>");
}

fn timeliness(h: &mut String, report: &Report) {
    h.push_str("<h2>Timeliness</h2><table><tr><th>Step</th><th class=\"n\">Orders timed</th><th class=\"n\">Late</th><th class=\"n\">Median</th><th class=\"n\">Slowest</th></tr>");
    for t in &report.timeliness {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(step_words(t.step)),
            t.timed,
            t.late,
            duration(t.median_s),
            duration(t.slowest_s)
        );
    }
    h.push_str("</table>");
}

fn stock_drift(h: &mut String, report: &Report) {
    if report.stock_drift.is_empty() {
        return;
    }
    h.push_str("<h2>Stock drift found in the period</h2><p class=\"muted\">Centra's sellable stock against what Ferry expects, as first found. Operations finds what else changes the stock; Ferry's stock sweep sets it again.</p><table><tr><th>Centra warehouse</th><th>SKU</th><th class=\"n\">Ferry expected</th><th class=\"n\">Centra offered</th><th>Found</th><th>Cleared</th></tr>");
    for d in &report.stock_drift {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            d.warehouse,
            esc(&d.sku),
            d.expected,
            d.centra,
            esc(&d.found_at),
            esc(d.cleared_at.as_deref().unwrap_or("not yet"))
        );
    }
    h.push_str("</table>");
}

/// A step of the journey as people say it.
pub fn step_words(step: crate::timeliness::Step) -> &'static str {
    use crate::timeliness::Step;
    match step {
        Step::Posted => "Centra accepted → in the ERP",
        Step::Shipped => "ERP shipped → shipment in Centra with tracking",
        Step::Email => "ERP shipped → customer's shipping e-mail",
        Step::Captured => "ERP shipped → payment captured",
    }
}

/// Seconds as a person reads them: `45 s`, `12 min`, `3.5 h`; a dash when not timed.
fn duration(seconds: Option<i64>) -> String {
    match seconds {
        None => "—".into(),
        Some(s) if s < 120 => format!("{s} s"),
        Some(s) if s < 2 * 3600 => format!("{} min", s / 60),
        Some(s) => format!("{}.{} h", s / 3600, s % 3600 * 10 / 3600),
    }
}

fn variances(h: &mut String, report: &Report) {
    if report.variances.is_empty() {
        return;
    }
    h.push_str("<h2>Every variance</h2><table><tr><th>Order</th><th>Cause</th><th>Team</th><th class=\"n\">Money</th><th>ERP document</th><th>What differs</th></tr>");
    for v in &report.variances {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&super::order_text(v)),
            esc(v.cause.as_str()),
            esc(v.owner.as_str()),
            esc(&money(&v.currency, v.money_minor)),
            esc(v.erp_reference.as_deref().unwrap_or("")),
            esc(&v.detail)
        );
    }
    h.push_str("</table>");
}
