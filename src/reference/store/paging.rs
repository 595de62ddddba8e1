//! Cursor pages over the store's lists and bulk reads.

use super::*;

/// Cursors are the hex of the last key on the page: opaque to clients, and correct while
/// writes happen because the next page starts strictly after that key.
pub(super) fn encode_cursor(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    joined.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn decode_cursor(cursor: Option<&str>, parts: usize) -> Result<Option<Vec<String>>> {
    let Some(text) = cursor else {
        return Ok(None);
    };
    let bad = || Rejection::invalid_field("cursor", "is not a cursor this portal gave out");
    if text.len() % 2 != 0 || text.len() > 4096 {
        return Err(bad());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let joined = String::from_utf8(bytes).map_err(|_| bad())?;
    let split: Vec<String> = joined.split('\u{1f}').map(str::to_string).collect();
    if split.len() != parts {
        return Err(bad());
    }
    Ok(Some(split))
}

/// One page of a bulk list after `cursor`, and the cursor of the next page when there is one.
#[allow(clippy::too_many_arguments)]
pub(super) fn bulk_page<T>(
    conn: &Connection,
    select: &str,
    columns: (&str, &str),
    scope: Option<&[String]>,
    cursor: Option<&str>,
    limit: usize,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    key: impl Fn(&T) -> (&str, &str),
) -> Result<(Vec<T>, Option<String>)> {
    let (after_cn, after_key) = match decode_cursor(cursor, 2)? {
        Some(v) => (v[0].clone(), v[1].clone()),
        None => (String::new(), String::new()),
    };
    // One row more than the page tells whether another page follows.
    let mut rows = walk_bulk(
        conn,
        select,
        columns,
        scope,
        (&after_cn, &after_key),
        limit + 1,
        map,
    )?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|r| {
            let (cn, email) = key(r);
            encode_cursor(&[cn, email])
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// Reads up to `limit` rows of a bulk list ordered by (customer number, e-mail key), strictly
/// after the cursor's key. With a scope, each account is a range of the primary key of its
/// own, so a page costs the same on page 1 and page 100 however large the account.
pub(super) fn walk_bulk<T>(
    conn: &Connection,
    select: &str,
    (cn_col, key_col): (&str, &str),
    scope: Option<&[String]>,
    (after_cn, after_key): (&str, &str),
    limit: usize,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let Some(scope) = scope else {
        let sql = format!(
            "{select} WHERE ({cn_col}, {key_col}) > (?1, ?2)
             ORDER BY {cn_col}, {key_col} LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![after_cn, after_key, limit as i64], &map)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        return Ok(rows);
    };
    let mut accounts: Vec<&str> = scope
        .iter()
        .map(String::as_str)
        .filter(|cn| *cn >= after_cn)
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    let sql =
        format!("{select} WHERE {cn_col} = ?1 AND {key_col} > ?2 ORDER BY {key_col} LIMIT ?3");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = Vec::new();
    for cn in accounts {
        let after = if cn == after_cn { after_key } else { "" };
        let want = limit.saturating_sub(rows.len());
        if want == 0 {
            break;
        }
        let more = stmt
            .query_map(params![cn, after, want as i64], &map)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.extend(more);
    }
    Ok(rows)
}
