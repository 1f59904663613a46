//! Charts as inline SVG, drawn on the server (no chart library, no script).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::html::esc;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 12.0;

/// Colours for series, in order.
const PALETTE: [&str; 8] = [
    "#2f6fde", "#d9534f", "#f0ad4e", "#5cb85c", "#8e44ad", "#16a085", "#7f8c8d", "#c0392b",
];

/// Stacked bars: one bar per label, one segment per series (`series[i].1[k]` is label `k`'s
/// value), with a legend. `id` names the chart for tests and screenshots.
pub(crate) fn stacked_bars(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[(String, Vec<u64>)],
) -> String {
    if series.iter().all(|(_, v)| v.iter().all(|&x| x == 0)) {
        return format!(
            "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption><p class=\"empty\">Nothing to show yet.</p></figure>",
            esc(title)
        );
    }
    let max = (0..labels.len())
        .map(|k| {
            series
                .iter()
                .map(|(_, v)| v.get(k).copied().unwrap_or(0))
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - 10.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = plot_w / labels.len().max(1) as f64;
    let bar = (slot * 0.7).min(48.0);
    let mut svg = format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    // Axis and scale: 0, half, max.
    let fracs: &[f64] = if max >= 2 {
        &[0.0, 0.5, 1.0]
    } else {
        &[0.0, 1.0]
    };
    for &frac in fracs {
        let y = TOP + plot_h * (1.0 - frac);
        let v = (max as f64 * frac).round() as u64;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
<text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{v}</text>",
            WIDTH - 10.0,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for (k, label) in labels.iter().enumerate() {
        let x = LEFT + slot * k as f64 + (slot - bar) / 2.0;
        let mut y = TOP + plot_h;
        for (i, (name, values)) in series.iter().enumerate() {
            let v = values.get(k).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = plot_h * v as f64 / max as f64;
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}: {} {v}</title></rect>",
                PALETTE[i % PALETTE.len()],
                esc(label),
                esc(name)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            x + bar / 2.0,
            HEIGHT - 10.0,
            esc(label)
        );
    }
    svg.push_str("</svg><div class=\"legend\">");
    for (i, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            svg,
            "<span><i style=\"background:{}\"></i>{}</span>",
            PALETTE[i % PALETTE.len()],
            esc(name)
        );
    }
    svg.push_str("</div></figure>");
    svg
}

/// Series of rejected rows by code over runs: `errors[k]` is run `k`'s count by code.
pub(crate) fn by_code(errors: &[BTreeMap<String, u64>]) -> Vec<(String, Vec<u64>)> {
    let codes: std::collections::BTreeSet<&String> = errors.iter().flat_map(|e| e.keys()).collect();
    codes
        .into_iter()
        .map(|code| {
            (
                code.clone(),
                errors
                    .iter()
                    .map(|e| e.get(code).copied().unwrap_or(0))
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_tallest_stack_and_name_every_series() {
        let svg = stacked_bars(
            "c",
            "records",
            &["#1".into(), "#2".into()],
            &[
                ("ingested".into(), vec![90, 40]),
                ("failed".into(), vec![10, 0]),
            ],
        );
        assert!(svg.contains("#1: ingested 90") && svg.contains("#1: failed 10"));
        assert!(!svg.contains("#2: failed"), "zero segments are not drawn");
        assert!(
            svg.contains(">100</text>"),
            "the scale tops at the tallest stack"
        );
        assert!(svg.contains("ingested</span>") && svg.contains("failed</span>"));
    }

    #[test]
    fn a_chart_without_data_says_so() {
        let svg = stacked_bars("c", "rejected", &["#1".into()], &[("A".into(), vec![0])]);
        assert!(svg.contains("Nothing to show yet") && !svg.contains("<svg"));
    }

    #[test]
    fn codes_become_series_with_zeros_where_a_run_had_none() {
        let runs = vec![
            BTreeMap::from([("A".to_string(), 2)]),
            BTreeMap::from([("B".to_string(), 3)]),
        ];
        assert_eq!(
            by_code(&runs),
            vec![("A".into(), vec![2, 0]), ("B".into(), vec![0, 3])]
        );
    }
}
