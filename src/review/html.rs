//! The review as one self-contained HTML page: no external resource, every text HTML-escaped,
//! a strict Content-Security-Policy that lets only this page's own script and style run (by
//! their SHA-256), a table sortable by each column and filterable by finding, and a timeline of
//! the grants that end within 90 days. With `#selftest` in the URL the page sorts and filters
//! itself and writes what it saw into `<pre id="selftest">` (the headless-browser test reads it).

use std::fmt::Write;

use super::{COLUMNS, Finding, ReviewDocument, TIMELINE_DAYS};

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.4em; text-align: left; vertical-align: top; }
th { background: #eee; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \25B2"; }
th[aria-sort="descending"]::after { content: " \25BC"; }
tr.hidden { display: none; }
.finding { display: inline-block; background: #fde2e2; border-radius: 3px; padding: 0 0.3em; margin: 0 0.1em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
meter { width: 12em; }
"#;

const SCRIPT: &str = r##"
(function () {
  "use strict";
  var table = document.getElementById("rows");
  var body = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  var filter = document.getElementById("finding-filter");
  function text(row, col) { return row.cells[col].textContent; }
  function sortBy(col, descending) {
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = text(a, col), y = text(b, col);
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
    headers[col].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  function applyFilter(word) {
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var words = (r.getAttribute("data-findings") || "").split(" ");
      var visible = word === "" || words.indexOf(word) >= 0;
      r.classList.toggle("hidden", !visible);
      if (visible) { shown++; }
    });
    document.getElementById("shown").textContent = String(shown);
    return shown;
  }
  Array.prototype.forEach.call(headers, function (th, col) {
    th.addEventListener("click", function () {
      sortBy(col, th.getAttribute("aria-sort") === "ascending");
    });
  });
  filter.addEventListener("change", function () { applyFilter(filter.value); });
  function selftest() {
    var out = [];
    var emailCol = -1;
    for (var i = 0; i < headers.length; i++) {
      if (headers[i].getAttribute("data-column") === "email") { emailCol = i; }
    }
    sortBy(emailCol, false);
    var sorted = true;
    for (var j = 1; j < body.rows.length; j++) {
      if (text(body.rows[j - 1], emailCol) > text(body.rows[j], emailCol)) { sorted = false; }
    }
    sortBy(emailCol, true);
    var first = body.rows.length ? text(body.rows[0], emailCol) : "";
    out.push("sort-ascending " + (sorted ? "ok" : "FAIL"));
    out.push("sort-descending-first " + first);
    var words = Array.prototype.map.call(filter.options, function (o) { return o.value; })
      .filter(function (w) { return w !== ""; });
    words.forEach(function (w) {
      var shown = applyFilter(w);
      var wrong = Array.prototype.filter.call(body.rows, function (r) {
        var has = (r.getAttribute("data-findings") || "").split(" ").indexOf(w) >= 0;
        return has === r.classList.contains("hidden");
      }).length;
      out.push("filter " + w + " " + shown + (wrong === 0 ? " ok" : " FAIL"));
    });
    var all = applyFilter("");
    out.push("filter-none " + all + " of " + body.rows.length);
    document.getElementById("selftest").textContent = out.join("\n");
  }
  if (window.location.hash === "#selftest") { selftest(); }
})();
"##;

/// `text` with `& < > " '` written as entities, and control characters escaped.
pub fn escape(text: &str) -> String {
    let text = crate::domain::text::printable(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648), for the CSP hashes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The CSP source of an inline script or style: `'sha256-…'`.
pub fn csp_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!("'sha256-{}'", base64(digest.as_ref()))
}

/// The Content-Security-Policy of the page: nothing from anywhere, but this page's own
/// script and style.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src 'none'; base-uri 'none'; form-action 'none'",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    )
}

pub fn render(doc: &ReviewDocument) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>Access review {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&content_security_policy()),
        escape(&doc.generated_at)
    );
    let _ = writeln!(out, "<h1>Access review</h1>\n<dl>");
    let commit = doc.manifests_commit.as_deref().unwrap_or("(not in git)");
    for (k, v) in [
        ("generated at", doc.generated_at.as_str()),
        ("portal", doc.portal.as_str()),
        ("manifests commit", commit),
        ("population (SHA-256)", doc.population.as_str()),
    ] {
        let _ = writeln!(out, "<dt>{}</dt><dd><code>{}</code></dd>", k, escape(v));
    }
    let _ = writeln!(out, "</dl>");
    timeline(doc, &mut out);
    table(doc, &mut out);
    let _ = write!(
        out,
        "<pre id=\"selftest\"></pre>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    );
    out
}

/// The grants whose `until` falls within the next 90 days, soonest first.
fn timeline(doc: &ReviewDocument, out: &mut String) {
    let today = doc
        .generated_at
        .parse::<jiff::Timestamp>()
        .map(|t| jiff::tz::TimeZone::UTC.to_datetime(t).date())
        .ok();
    let mut ending: Vec<(i64, &super::ReviewRow)> = doc
        .rows
        .iter()
        .filter_map(|r| {
            let until = crate::domain::parse_date(r.until.as_deref()?).ok()?;
            let days = today?.until(until).ok()?.get_days();
            let days = i64::from(days);
            (0..=TIMELINE_DAYS).contains(&days).then_some((days, r))
        })
        .collect();
    ending.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key().cmp(&b.1.key())));
    let _ = writeln!(
        out,
        "<h2>Ending within {TIMELINE_DAYS} days</h2>\n<ol id=\"timeline\">"
    );
    if ending.is_empty() {
        let _ = writeln!(out, "<li>Nothing ends within {TIMELINE_DAYS} days.</li>");
    }
    for (days, r) in &ending {
        let _ = writeln!(
            out,
            "<li><meter min=\"0\" max=\"{TIMELINE_DAYS}\" value=\"{days}\"></meter> {} (in {days} days): {} {} on {}</li>",
            escape(r.until.as_deref().unwrap_or_default()),
            escape(&r.email),
            escape(&r.role),
            escape(&r.customer_number)
        );
    }
    let _ = writeln!(out, "</ol>");
}

fn table(doc: &ReviewDocument, out: &mut String) {
    let _ = writeln!(
        out,
        "<h2>Rows</h2>\n<p><label>Finding: <select id=\"finding-filter\"><option value=\"\">(all)</option>"
    );
    for f in Finding::ALL {
        if doc.rows.iter().any(|r| r.findings.contains(&f)) {
            let _ = writeln!(out, "<option value=\"{0}\">{0}</option>", f.as_str());
        }
    }
    let _ = writeln!(
        out,
        "</select></label> <span id=\"shown\">{}</span> of {} rows shown</p>",
        doc.rows.len(),
        doc.rows.len()
    );
    let _ = write!(out, "<table id=\"rows\">\n<thead><tr>");
    for c in COLUMNS {
        let _ = write!(out, "<th data-column=\"{c}\">{c}</th>");
    }
    let _ = writeln!(out, "</tr></thead>\n<tbody>");
    for row in &doc.rows {
        let words: Vec<&str> = row.findings.iter().map(|f| f.as_str()).collect();
        let _ = write!(out, "<tr data-findings=\"{}\">", words.join(" "));
        for (name, cell) in COLUMNS.iter().zip(row.cells()) {
            if *name == "findings" {
                let _ = write!(out, "<td>");
                for w in &words {
                    let _ = write!(out, "<span class=\"finding\">{w}</span> ");
                }
                let _ = write!(out, "</td>");
            } else {
                let _ = write!(out, "<td>{}</td>", escape(&cell));
            }
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</tbody>\n</table>");
}
