//! Human-readable output: aligned text tables and RFC 3339 UTC times. Everything shown comes
//! from the server, so control characters are replaced before they reach a terminal.

/// Columns padded to the widest cell, two spaces apart, no trailing blanks.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells.into_iter().map(|c| printable(&c)).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(width(c));
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for r in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', w - width(c)));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines for one record, keys aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let pad = " ".repeat(w - k.len());
        out.push_str(format!("{k}:{pad} {}", printable(v)).trim_end());
        out.push('\n');
    }
    out
}

/// Replaces control characters (a description could carry terminal escapes) with `?`.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Unix seconds as RFC 3339 UTC, e.g. `2026-11-27T22:25:52Z`.
pub fn rfc3339(unix: u64) -> String {
    crate::rfc3339::seconds(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_trailing_blanks() {
        let mut t = Table::new(&["SLUG", "CREATED", "NOTE"]);
        assert!(t.is_empty());
        t.row(vec![
            "acme".into(),
            "2026-11-27T22:25:52Z".into(),
            String::new(),
        ]);
        t.row(vec!["a-much-longer-org".into(), "x".into(), "hi".into()]);
        assert!(!t.is_empty());
        assert_eq!(
            t.render(),
            "SLUG               CREATED               NOTE\n\
             acme               2026-11-27T22:25:52Z\n\
             a-much-longer-org  x                     hi\n"
        );
    }

    #[test]
    fn table_width_counts_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["Ünï".into(), "x".into()]);
        t.row(vec!["abcd".into(), "y".into()]);
        assert_eq!(t.render(), "A     B\nÜnï   x\nabcd  y\n");
    }

    #[test]
    fn short_rows_are_padded_and_control_characters_replaced() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["\x1b[31mred".into()]);
        assert_eq!(t.render(), "A         B\n?[31mred\n");
    }

    #[test]
    fn empty_table_renders_only_the_header() {
        assert_eq!(Table::new(&["ID", "KIND"]).render(), "ID  KIND\n");
    }

    #[test]
    fn fields_align_keys() {
        assert_eq!(
            fields(&[
                ("slug", "web".into()),
                ("visibility", "public".into()),
                ("x", String::new())
            ]),
            "slug:       web\nvisibility: public\nx:\n"
        );
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_410_352), "2026-12-27T22:25:52Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
