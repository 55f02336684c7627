//! What the human-readable output looks like: tables whose columns are as wide as their
//! widest cell, each under a header; colour only where it helps (headers, ALLOWED / REFUSED,
//! the `appipc:` of an error) and only when wanted: `--color auto` (the default) colours a
//! terminal unless `NO_COLOR` is set (<https://no-color.org>) or `TERM=dumb`; `--color always`
//! and `--color never` decide alone.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    /// Colour a terminal, unless NO_COLOR is set or TERM is dumb.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Records the choice of `--color` (once, at start).
pub(crate) fn set_color(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

/// Whether `NO_COLOR` asks for no colour (set and not empty).
pub(crate) fn no_color_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

fn wanted(is_terminal: bool) -> bool {
    match CHOICE.get().copied().unwrap_or_default() {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && !no_color_env() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    }
}

/// Whether stdout is coloured.
pub(crate) fn stdout_color() -> bool {
    wanted(std::io::stdout().is_terminal())
}

/// Whether stderr is coloured.
pub(crate) fn stderr_color() -> bool {
    wanted(std::io::stderr().is_terminal())
}

static JSON: OnceLock<bool> = OnceLock::new();

/// Records `--json` (once, at start).
pub(crate) fn set_json(on: bool) {
    let _ = JSON.set(on);
}

/// Whether `--json` was given: every command then prints JSON (`docs/cli.md`).
pub(crate) fn json() -> bool {
    JSON.get().copied().unwrap_or(false)
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `data` as JSON with `--json`, else the line `text` gives.
pub(crate) fn say(
    data: &impl serde::Serialize,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json() {
        print_json(data)
    } else {
        println!("{}", text());
        Ok(())
    }
}

/// A colour (SGR code) for [`paint`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Paint {
    Bold,
    Red,
    Green,
}

/// `text` in `paint` when `on`.
pub(crate) fn paint(text: &str, paint: Paint, on: bool) -> String {
    if !on {
        return text.to_owned();
    }
    let code = match paint {
        Paint::Bold => "1",
        Paint::Red => "1;31",
        Paint::Green => "32",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A table: a header, then rows, each column as wide as its widest cell (in characters), two
/// spaces apart; cells are escaped for the terminal (`appipc::wire::text::printable`).
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub(crate) fn new(header: &[&'static str]) -> Table {
        Table { header: header.to_vec(), right: vec![false; header.len()], rows: Vec::new() }
    }

    /// Aligns column `i` to the right (numbers).
    pub(crate) fn right(mut self, i: usize) -> Table {
        self.right[i] = true;
        self
    }

    /// Adds a row (as many cells as the header).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(
            cells.into_iter().map(|c| appipc::wire::text::printable(&c).into_owned()).collect(),
        );
    }

    /// The table as lines (the header bold when `color`).
    pub(crate) fn render(&self, color: bool) -> Vec<String> {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.header[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let line = |cells: &[&str], bold: bool| {
            let last = cells.len() - 1;
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                let cell = if bold { paint(c, Paint::Bold, true) } else { (*c).to_owned() };
                if i > 0 {
                    out.push_str("  ");
                }
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&cell);
                } else {
                    out.push_str(&cell);
                    if i < last {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_owned()
        };
        let mut lines = vec![line(&self.header, color)];
        for r in &self.rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            lines.push(line(&cells, false));
        }
        lines
    }

    /// Prints it on stdout.
    pub(crate) fn print(&self) {
        for l in self.render(stdout_color()) {
            println!("{l}");
        }
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SSZ` (UTC).
pub(crate) fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A size in bytes, in the largest binary unit that keeps it at least 1.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["PID", "APP", "NOTE"]).right(0);
        t.row(vec!["7".into(), "Contoso.Hello_cvnpggrrsm18p!App".into(), "x".into()]);
        t.row(vec!["12345".into(), "A_b!C".into(), "ünïcödé".into()]);
        let lines = t.render(false);
        assert_eq!(lines[0], "  PID  APP                              NOTE");
        assert_eq!(lines[1], "    7  Contoso.Hello_cvnpggrrsm18p!App  x");
        assert_eq!(lines[2], "12345  A_b!C                            ünïcödé");
        // A client's text cannot move the columns or reach the terminal.
        let mut t = Table::new(&["NAME", "X"]);
        t.row(vec!["a\nb\x1b[2J".into(), "y".into()]);
        assert_eq!(t.render(false)[1], "a\\nb\\u{1b}[2J  y");
    }

    #[test]
    fn times_and_sizes() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
