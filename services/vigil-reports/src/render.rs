//! A report as one self-contained HTML page with inline SVG charts (no
//! scripts, no external files: it opens from a USB stick or an e-mail).

use std::fmt::Write;

use chrono::{Local, TimeZone};

use crate::Report;

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

fn local_time(unix_ms: i64) -> String {
    Local
        .timestamp_millis_opt(unix_ms)
        .single()
        .map(|t| t.format("%a %Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| unix_ms.to_string())
}

/// A vertical bar chart: one bar per label.
fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let (width, height, top, bottom, left) = (720.0, 220.0, 24.0, 36.0, 44.0);
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let slot = (width - left) / bars.len().max(1) as f64;
    let plot = height - top - bottom;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        svg,
        r##"<text x="{left}" y="16" font-size="13" font-weight="bold">{}</text><line x1="{left}" y1="{y}" x2="{width}" y2="{y}" stroke="#999"/><text x="{lx}" y="{ty}" font-size="10" text-anchor="end">{max}</text><text x="{lx}" y="{y}" font-size="10" text-anchor="end">0</text>"##,
        esc(title),
        y = top + plot,
        lx = left - 4.0,
        ty = top + 8.0,
        max = max as u64
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let h = plot * (*value as f64) / max;
        let x = left + slot * i as f64 + slot * 0.15;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#3b6ea5"><title>{l}: {value}</title></rect><text x="{cx:.1}" y="{ly}" font-size="10" text-anchor="middle">{l}</text>"##,
            y = top + plot - h,
            w = slot * 0.7,
            l = esc(label),
            cx = x + slot * 0.35,
            ly = height - bottom + 14.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report as an HTML page.
pub fn html(report: &Report) -> String {
    let mut page = String::new();
    let title = format!(
        "Vigil {} report {}",
        report.period,
        esc(&report.label) // labels are generated, but escape all text
    );
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:760px;margin:1em auto;color:#222}}
table{{border-collapse:collapse;width:100%;margin-bottom:1em}}td,th{{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;font-size:14px}}
.alarm{{color:#b00020;font-weight:bold}}.muted{{color:#777}}svg{{width:100%;height:auto}}</style></head><body>
<h1>{title}</h1>
<p class="muted">{} to {} (UTC{}), indexed through event {}, generated {}.</p>
"#,
        local_time(report.from_unix_ms),
        local_time(report.to_unix_ms),
        esc(&report.utc_offset),
        report.indexed_through_seq,
        local_time(report.generated_unix_ms)
    );
    let t = &report.totals;
    let _ = write!(
        page,
        "<h2>Summary</h2><table><tr><th>events</th><th>alarms</th><th>armed</th><th>disarmed</th>\
         <th>faults</th><th>tamper</th><th>sensor changes</th></tr><tr><td>{}</td>\
         <td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        t.events,
        if t.alarms > 0 {
            r#" class="alarm""#
        } else {
            ""
        },
        t.alarms,
        t.arms,
        t.disarms,
        t.faults,
        t.tampers,
        t.sensor_changes
    );

    page.push_str("<h2>Alarms</h2>");
    if report.alarms.is_empty() {
        page.push_str("<p>No alarms.</p>");
    } else {
        page.push_str(
            "<table><tr><th>when</th><th>sensor</th><th>mode</th><th>what</th><th>disarmed</th></tr>",
        );
        for a in &report.alarms {
            let disarmed = match (&a.disarmed_unix_ms, &a.disarmed_by) {
                (Some(at), Some(by)) => format!("{} by {}", local_time(*at), esc(by)),
                _ => "not yet".into(),
            };
            let _ = write!(
                page,
                r#"<tr class="alarm"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{disarmed}</td></tr>"#,
                local_time(a.unix_ms),
                esc(a.sensor.as_deref().unwrap_or("panic")),
                esc(&a.mode),
                esc(&a.message)
            );
        }
        page.push_str("</table>");
    }
    omitted(&mut page, report.alarms_omitted);

    page.push_str("<h2>Arming and disarming</h2>");
    if report.timeline.is_empty() {
        page.push_str("<p>The system was not armed or disarmed.</p>");
    } else {
        page.push_str(
            "<table><tr><th>when</th><th>what</th><th>mode</th><th>who</th><th>from</th></tr>",
        );
        for e in &report.timeline {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                local_time(e.unix_ms),
                esc(&e.kind),
                esc(&e.mode),
                esc(e.user.as_deref().unwrap_or("-")),
                esc(&e.source)
            );
        }
        page.push_str("</table>");
    }
    omitted(&mut page, report.timeline_omitted);

    page.push_str("<h2>Sensors</h2>");
    if report.sensors.is_empty() {
        page.push_str("<p>No sensor events.</p>");
    } else {
        let bars: Vec<(String, u64)> = report
            .sensors
            .iter()
            .take(16)
            .map(|s| (s.sensor.clone(), s.events))
            .collect();
        page.push_str(&bar_chart("Events per sensor", &bars));
        page.push_str(
            "<table><tr><th>sensor</th><th>changes</th><th>faults</th><th>tamper</th><th>events</th></tr>",
        );
        for s in &report.sensors {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.sensor),
                s.changes,
                s.faults,
                s.tampers,
                s.events
            );
        }
        page.push_str("</table>");
    }

    page.push_str("<h2>Faults and tamper</h2>");
    if report.faults.is_empty() {
        page.push_str("<p>None.</p>");
    } else {
        page.push_str(
            "<table><tr><th>when</th><th>what</th><th>sensor or camera</th><th>message</th></tr>",
        );
        for f in &report.faults {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                local_time(f.unix_ms),
                esc(&f.kind),
                esc(f.sensor.as_deref().or(f.camera.as_deref()).unwrap_or("-")),
                esc(&f.message)
            );
        }
        page.push_str("</table>");
    }
    omitted(&mut page, report.faults_omitted);

    page.push_str("<h2>Cameras</h2>");
    if report.cameras.is_empty() {
        page.push_str("<p>No cameras.</p>");
    } else {
        page.push_str(
            "<table><tr><th>camera</th><th>uptime</th><th>offline</th><th>outages</th></tr>",
        );
        for c in &report.cameras {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{:.2} %</td><td>{} s</td><td>{}</td></tr>",
                esc(&c.camera),
                c.uptime_percent,
                c.offline_ms / 1000,
                c.outages
            );
        }
        page.push_str("</table>");
    }

    page.push_str("<h2>Activity</h2>");
    let hours: Vec<(String, u64)> = report
        .by_hour_of_day
        .iter()
        .enumerate()
        .map(|(h, n)| (format!("{h:02}"), *n))
        .collect();
    page.push_str(&bar_chart("Events by hour of day", &hours));
    if !report.busiest_hours.is_empty() {
        let busiest: Vec<String> = report
            .busiest_hours
            .iter()
            .map(|h| format!("{:02}:00-{:02}:59 ({} events)", h.hour, h.hour, h.events))
            .collect();
        let _ = write!(page, "<p>Busiest hours: {}.</p>", busiest.join(", "));
    }
    if report.by_day.len() > 1 {
        let days: Vec<(String, u64)> = report
            .by_day
            .iter()
            .map(|d| (d.date.get(5..).unwrap_or(&d.date).to_owned(), d.events))
            .collect();
        page.push_str(&bar_chart("Events per day", &days));
    }
    page.push_str("</body></html>\n");
    page
}

fn omitted(page: &mut String, n: u64) {
    if n > 0 {
        let _ = write!(
            page,
            r#"<p class="muted">{n} more not shown: query them with <code>vigilctl events</code>.</p>"#
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let svg = bar_chart("t", &[("<script>".into(), 3)]);
        assert!(!svg.contains("<script>"), "{svg}");
    }
}
