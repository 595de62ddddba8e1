//! The attestation form: RFC 4180 CSV, columns in SPEC order, and a reader for the filled-in
//! form that `review verify` checks.

use super::{COLUMNS, ReviewRow};

/// Characters that make a spreadsheet read a cell as a formula (and `'`, so that the prefix
/// this writer adds can always be taken off again).
const FORMULA_STARTS: [char; 5] = ['=', '+', '-', '@', '\''];

/// A cell as written: prefixed with `'` when a spreadsheet would take it for a formula, and
/// quoted when it holds a comma, a quote or a line break.
pub fn cell(text: &str) -> String {
    let text = if text.starts_with(FORMULA_STARTS) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The value a written cell stands for: the `'` this writer added taken off.
pub fn uncell(text: &str) -> &str {
    match text.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => text,
    }
}

/// The review as CSV: the header, then one line per row, CRLF line ends (RFC 4180).
pub fn render(rows: &[ReviewRow]) -> String {
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row.cells().iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One record of a CSV file and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: u32,
    pub fields: Vec<String>,
}

/// A CSV file that is not RFC 4180: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct CsvError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Reads RFC 4180 CSV (LF or CRLF line ends; a last line without one is fine). Empty lines are
/// skipped.
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut column) = (1u32, 0u32);
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut start_line = 1;
    let mut quoted = false;
    let mut after_quote = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        column += 1;
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    column += 1;
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    after_quote = true;
                }
                '\n' => {
                    field.push(c);
                    line += 1;
                    column = 0;
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                after_quote = false;
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any || !field.is_empty() || after_quote {
                    fields.push(std::mem::take(&mut field));
                    records.push(Record {
                        line: start_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                after_quote = false;
                any = false;
                line += 1;
                column = 0;
                start_line = line;
            }
            _ if after_quote => {
                return Err(CsvError {
                    line,
                    column,
                    message: format!(
                        "{:?} after a closing quote: a quoted field ends with a quote followed by a comma or a line end",
                        c
                    ),
                });
            }
            '"' if field.is_empty() => {
                quoted = true;
                any = true;
            }
            '"' => {
                return Err(CsvError {
                    line,
                    column,
                    message: "a quote inside an unquoted field: quote the whole field and double the quote".into(),
                });
            }
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(CsvError {
            line: start_line,
            column: 1,
            message: "a quoted field is never closed".into(),
        });
    }
    if any || !field.is_empty() || after_quote {
        fields.push(field);
        records.push(Record {
            line: start_line,
            fields,
        });
    }
    Ok(records)
}
