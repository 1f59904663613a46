//! HTML building: escaping and the page frame.

use std::fmt::Write;

/// `s` with HTML's special characters escaped (for text and attribute values).
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// The console's pages, in the navigation's order: (path, label).
const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/accounts", "Accounts"),
    ("/wizard", "New dataflow"),
    ("/dataflows", "Dataflows"),
    ("/monitoring", "Monitoring"),
    ("/rejected", "Rejected rows"),
];

/// A whole page: head, navigation (with `active` marked), `body`.
pub(crate) fn page(title: &str, active: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in NAV {
        let class = if path == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{class}>{label}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t} · stripe-xdm</title><link rel=\"stylesheet\" href=\"/assets/console.css\">\
<script src=\"/assets/console.js\" defer></script></head>\
<body><header><span class=\"brand\">stripe-xdm</span><nav>{nav}</nav></header>\
<main><h1>{t}</h1>{body}</main></body></html>\n",
        t = esc(title)
    )
}

/// A table of `rows` (cells already HTML) under `headers`, or `empty` when there is none.
pub(crate) fn table(id: &str, headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\" id=\"{id}\">{}</p>", esc(empty));
    }
    let mut out = format!("<table id=\"{id}\"><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM` UTC.
pub(crate) fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn an_empty_table_says_so() {
        assert!(table("t", &["a"], &[], "none yet").contains("none yet"));
        let t = table("t", &["a", "b"], &[vec!["1".into(), "2".into()]], "");
        assert!(t.contains("<th>a</th><th>b</th>") && t.contains("<td>1</td><td>2</td>"));
    }
}
