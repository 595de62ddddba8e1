//! `plan` as text, read like `terraform plan`.

use std::fmt::Write;

use super::{Summary, describe};
use crate::domain::Mode;
use crate::domain::text::printable;
use crate::plan::AccountPlan;

/// Whether to colour the output (a terminal, and `NO_COLOR` unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Colour,
}

impl Style {
    /// Colour only on a terminal, and never with `NO_COLOR` set (<https://no-color.org>).
    pub fn for_stdout() -> Style {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if std::io::stdout().is_terminal() && !no_color {
            Style::Colour
        } else {
            Style::Plain
        }
    }

    fn paint(self, sign: char, text: &str) -> String {
        if self == Style::Plain {
            return text.to_string();
        }
        let code = match sign {
            '+' => "32",
            '~' => "33",
            '-' => "31",
            '!' => "1;31",
            _ => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// A plan without warnings; see [`text_with_warnings`].
pub fn text(plans: &[AccountPlan], style: Style) -> String {
    text_with_warnings(plans, &[], style)
}

/// The plan, then the warnings of the manifests it was made from (one located sentence
/// each), then the summary line.
pub fn text_with_warnings(plans: &[AccountPlan], warnings: &[String], style: Style) -> String {
    let mut writer = TextWriter::new(style);
    let mut out = writer.accounts(plans);
    let mut summary = Summary::default();
    summary.add(plans);
    out.push_str(&writer.finish(warnings, &summary));
    out
}

/// The text plan written a batch of accounts at a time: the pieces put together are
/// [`text_with_warnings`] of all the accounts.
#[derive(Debug, Clone, Copy)]
pub struct TextWriter {
    style: Style,
    /// Whether an account with something to show was written (the heading is written before
    /// the first, and a blank line after the last).
    any: bool,
}

impl TextWriter {
    pub fn new(style: Style) -> TextWriter {
        TextWriter { style, any: false }
    }

    /// The accounts of `plans` that have changes, refusals or errors to show.
    pub fn accounts(&mut self, plans: &[AccountPlan]) -> String {
        let mut out = String::new();
        for p in plans
            .iter()
            .filter(|p| p.has_changes() || p.refused.is_some() || !p.errors.is_empty())
        {
            if !self.any {
                out.push_str("rolecall will perform the following actions:\n");
                self.any = true;
            }
            account(&mut out, p, self.style);
        }
        out
    }

    /// After the last account: the warnings and the summary line.
    pub fn finish(self, warnings: &[String], summary: &Summary) -> String {
        let style = self.style;
        let mut out = String::new();
        if self.any {
            let _ = writeln!(out);
        }
        for w in warnings {
            let line = format!("warning: {}", one_line(w));
            let _ = writeln!(out, "{}", style.paint('~', &line));
        }
        if !warnings.is_empty() {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{}", summary.line());
        out
    }
}

/// One account's block of the text plan.
fn account(out: &mut String, p: &AccountPlan, style: Style) {
    let _ = writeln!(out);
    let observe = if p.mode == Mode::Observe {
        " — Observe mode, not applied"
    } else {
        ""
    };
    // Strings from manifests and portals are escaped: a control character in them could
    // otherwise erase lines or print a change that is not in the plan.
    let _ = writeln!(
        out,
        "  # customer account {} ({}){observe}",
        printable(&p.customer_number),
        printable(&p.source)
    );
    if let Some(reason) = &p.refused {
        let line = format!("  ! refused: {}", printable(&reason.to_string()));
        let _ = writeln!(out, "{}", style.paint('!', &line));
    }
    for e in &p.errors {
        let e = e.to_string();
        let _ = writeln!(
            out,
            "{}",
            style.paint('!', &format!("  ! {}", printable(&e)))
        );
    }
    for c in &p.changes {
        let sign = c.action.sign();
        let line = format!("  {sign} {}", printable(&describe(c)));
        let _ = writeln!(out, "{}", style.paint(sign, &line));
    }
    for n in &p.notes {
        let _ = writeln!(out, "    note: {}", printable(n));
    }
}

/// A warning quotes what the manifests hold: no control character reaches the terminal.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
