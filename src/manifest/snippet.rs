//! Diagnostics with the source line shown under them, for people at a terminal (rustc-style,
//! through annotate-snippets). Pipes and CI get the one-line form.

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};

use super::diagnostic::{Diagnostic, Severity};

/// Renders `d` with a snippet of `source`; `None` when the place is not in the text.
pub fn render(d: &Diagnostic, source: &str, colour: bool) -> Option<String> {
    let line_start = line_offset(source, d.pos.line)?;
    let line_end = source[line_start..]
        .find('\n')
        .map_or(source.len(), |i| line_start + i);
    let line = &source[line_start..line_end];
    let col_byte = line
        .char_indices()
        .nth(d.pos.column.saturating_sub(1) as usize)
        .map_or(line.len(), |(i, _)| i);
    let rest = &line[col_byte..];
    // At least the character under the column, whole: it may itself be a space of several
    // bytes (U+2028), and a span that ends inside a character is not a span.
    let first = rest.chars().next().map_or(1, char::len_utf8);
    let len = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | ']'))
        .unwrap_or(rest.len())
        .max(first);
    let start = line_start + col_byte;
    let end = (start + len).min(source.len()).max(start);
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let title = format!("{}: {}", d.path, d.message);
    let report = &[level.primary_title(&title).element(
        Snippet::source(source)
            .path(&d.file)
            .annotation(AnnotationKind::Primary.span(start..end)),
    )];
    let renderer = if colour {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    Some(renderer.render(report).to_string())
}

fn line_offset(source: &str, line: u32) -> Option<usize> {
    if line == 0 {
        return None;
    }
    if line == 1 {
        return Some(0);
    }
    source
        .match_indices('\n')
        .nth(line as usize - 2)
        .map(|(i, _)| i + 1)
        .filter(|&i| i <= source.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml::{Path, Pos};

    /// A fuzz find: the column is on a space of three bytes (U+2028), and the span under it
    /// must cover the whole character.
    #[test]
    fn a_multibyte_space_under_the_column_is_covered_whole() {
        let src = "spec:\n \u{2028} x\n";
        let d = Diagnostic::error(
            "a.yaml",
            Pos { line: 2, column: 2 },
            &Path::root().key("spec"),
            "unexpected",
        );
        let out = render(&d, src, false).unwrap();
        assert!(out.contains("a.yaml:2:2"), "{out}");
    }

    #[test]
    fn points_at_the_value() {
        let src = "spec:\n  timeZone: Europe/Zurch\n";
        let d = Diagnostic::error(
            "a.yaml",
            Pos {
                line: 2,
                column: 13,
            },
            &Path::root().key("spec").key("timeZone"),
            "unknown",
        );
        let out = render(&d, src, false).unwrap();
        assert!(out.contains("a.yaml:2:13"), "{out}");
        assert!(out.contains("timeZone: Europe/Zurch"), "{out}");
        assert!(out.contains("^^^^^^^^^^^^"), "{out}");
    }

    #[test]
    fn survives_places_outside_the_text() {
        let d = Diagnostic::error(
            "a.yaml",
            Pos {
                line: 9,
                column: 99,
            },
            &Path::root(),
            "x",
        );
        assert!(render(&d, "a: 1\n", false).is_none());
        let d = Diagnostic::error(
            "a.yaml",
            Pos {
                line: 1,
                column: 99,
            },
            &Path::root(),
            "x",
        );
        assert!(render(&d, "a: 1", false).is_some());
    }
}
