//! Unit tests of the pure parts of the review: CSV, porcelain, identities, escaping.

use super::csv::{cell, parse, uncell};
use super::provenance::{parse_porcelain, same_person};

#[test]
fn csv_cells_are_quoted_and_defused_and_read_back_as_they_were() {
    for (value, written) in [
        ("plain", "plain"),
        ("a,b", "\"a,b\""),
        ("say \"hi\"", "\"say \"\"hi\"\"\""),
        ("two\nlines", "\"two\nlines\""),
        ("=1+1", "'=1+1"),
        ("+41 44", "'+41 44"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("'quoted", "''quoted"),
        ("=a,b", "\"'=a,b\""),
    ] {
        assert_eq!(cell(value), written, "{value:?}");
        let records = parse(&format!("{written}\r\n")).unwrap();
        assert_eq!(uncell(&records[0].fields[0]), value, "{value:?}");
    }
}

#[test]
fn csv_records_know_their_line_and_malformed_input_is_located() {
    let records = parse("a,b\r\n\"x\ny\",2\n\nlast,\"\"").unwrap();
    let lines: Vec<u32> = records.iter().map(|r| r.line).collect();
    assert_eq!(lines, [1, 2, 5]);
    assert_eq!(records[1].fields, ["x\ny", "2"]);
    assert_eq!(records[2].fields, ["last", ""]);
    assert_eq!(
        parse("a,b\nx\"y\n").unwrap_err().to_string(),
        "2:2: a quote inside an unquoted field: quote the whole field and double the quote"
    );
    assert_eq!(
        parse("\"a\"b\n").unwrap_err().to_string(),
        "1:4: 'b' after a closing quote: a quoted field ends with a quote followed by a comma or a line end"
    );
}

const PORCELAIN: &str = "\
1111111111111111111111111111111111111111 1 1 2
author Ann Author
author-mail <ann@example.test>
author-time 1767323045
author-tz +0100
committer Ann Author
summary Declare
filename acme.yaml
\tline one
1111111111111111111111111111111111111111 2 2
\tline two
0000000000000000000000000000000000000000 3 3 1
author Not Committed Yet
author-mail <not.committed.yet>
author-time 1767323999
author-tz +0000
filename acme.yaml
\tline three
";

#[test]
fn porcelain_gives_each_committed_line_its_author_commit_and_date() {
    let blame = parse_porcelain(PORCELAIN);
    assert_eq!(blame.len(), 2, "{blame:?}");
    let two = &blame[&2];
    assert_eq!(two.author, "Ann Author <ann@example.test>");
    assert_eq!(two.commit, "1".repeat(40));
    assert_eq!(two.date, "2026-01-02T03:04:05Z");
    assert!(!blame.contains_key(&3));
}

#[test]
fn a_reviewer_is_the_granter_by_e_mail_or_by_name() {
    let granted = "Ann Author <ann@example.test>";
    assert!(same_person("Ann Author <ANN@example.test>", granted));
    assert!(same_person("ann@example.test", granted));
    assert!(same_person("ann author", granted));
    assert!(!same_person("Rita <rita@example.test>", granted));
    assert!(!same_person("rita@example.test", granted));
    assert!(!same_person("Ann", granted));
}

#[test]
fn html_and_markdown_cells_escape_what_would_be_markup() {
    assert_eq!(
        super::html::escape("<script>alert('x')</script>&\u{1b}"),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\\u{1b}"
    );
    assert_eq!(
        super::markdown::cell("a|b [x](y)\n"),
        "a\\|b \\[x\\](y)\\\\n"
    );
}

#[test]
fn the_page_allows_only_its_own_script_and_style() {
    let csp = super::html::content_security_policy();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    // RFC 4648's test vector, through the encoder the hashes use.
    assert_eq!(
        super::html::csp_hash(""),
        "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
    );
}
