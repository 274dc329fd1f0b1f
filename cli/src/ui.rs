//! Terminal output: colour only on a terminal (and never with `NO_COLOR`),
//! a progress line on stderr, plain text when piped, and wrapped table
//! cells.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How stdout is written: with ANSI colours and wrapped to the terminal's
/// width, or plain.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Whether ANSI colour codes may be written.
    pub colour: bool,
    /// The terminal's width in columns; `None` when stdout is not a
    /// terminal (nothing is wrapped then).
    pub width: Option<usize>,
}

/// The colours used.
#[derive(Clone, Copy, Debug)]
pub enum Paint {
    /// Success.
    Green,
    /// A warning.
    Yellow,
    /// A failure.
    Red,
    /// Headings.
    Bold,
    /// Secondary text.
    Dim,
    /// Fixes.
    Cyan,
}

impl Style {
    /// The style for stdout as it is now.
    pub fn for_stdout() -> Style {
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        Style {
            colour: terminal && colour_allowed(),
            width: if terminal { terminal_width(true) } else { None },
        }
    }

    /// `text` in `paint`, or as it is when colour is off.
    pub fn paint(&self, paint: Paint, text: &str) -> String {
        if !self.colour {
            return text.to_string();
        }
        let code = match paint {
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Red => "1;31",
            Paint::Bold => "1",
            Paint::Dim => "2",
            Paint::Cyan => "36",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// Colour unless `NO_COLOR` is set (to anything non-empty) or the terminal
/// is `dumb`.
fn colour_allowed() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    !no_color && !dumb
}

/// The width of the terminal on stdout (`true`) or stderr, if it says.
fn terminal_width(stdout: bool) -> Option<usize> {
    match crate::platform::terminal_width(stdout) {
        Some(cols) if cols >= 20 => Some(cols),
        _ => std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .filter(|&c: &usize| c >= 20),
    }
}

/// Prints `report` on stdout: pretty JSON when `json`, otherwise as
/// `render` lays it out for stdout (colours only on a terminal). Write
/// errors, such as a reader that closed the pipe, are ignored.
pub fn print_report<R: serde::Serialize>(
    report: &R,
    json: bool,
    render: impl FnOnce(&R, Style) -> String,
) {
    let text = if json {
        let mut s = serde_json::to_string_pretty(report).expect("the report serialises");
        s.push('\n');
        s
    } else {
        render(report, Style::for_stdout())
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Splits `text` into lines of at most `width` characters, at spaces where
/// possible (a word longer than the line is cut).
pub fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    let Some(width) = width.map(|w| w.max(20)) else {
        return vec![text.to_string()];
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        loop {
            let used = line.chars().count();
            let need = word.chars().count() + usize::from(used > 0);
            if used + need <= width {
                if used > 0 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a whole line.
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `text` padded with spaces to `width` characters (never cut).
pub fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(n)))
}

/// `text` right-aligned in `width` characters (never cut).
pub fn pad_left(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{}{text}", " ".repeat(width.saturating_sub(n)))
}

/// How progress is shown on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A single line, redrawn with `\r`: stderr is a terminal.
    Line,
    /// One plain line per step: stderr is a file or a pipe.
    Plain,
    /// Nothing.
    Silent,
}

/// Progress on stderr: one redrawn line on a terminal, plain lines
/// otherwise, nothing when asked to be quiet.
pub struct Progress {
    mode: Mode,
    width: usize,
    started: Instant,
    drawn: bool,
    /// Characters in the line drawn last.
    drawn_len: usize,
    /// `TERM=dumb`: no escape codes at all.
    dumb: bool,
    /// When the bar was last drawn, and its label.
    last_bar: Option<(Instant, String)>,
}

impl Progress {
    /// Progress on stderr. `quiet` suppresses the plain-line form (used
    /// with `--json` when stderr is not a terminal); on a terminal the
    /// redrawn line is always shown, as it leaves nothing behind.
    pub fn new(quiet: bool) -> Progress {
        let stderr = std::io::stderr();
        let mode = if stderr.is_terminal() {
            Mode::Line
        } else if quiet {
            Mode::Silent
        } else {
            Mode::Plain
        };
        Progress {
            mode,
            width: terminal_width(false).unwrap_or(80),
            started: Instant::now(),
            drawn: false,
            drawn_len: 0,
            dumb: std::env::var_os("TERM").is_some_and(|t| t == "dumb"),
            last_bar: None,
        }
    }

    /// Step `done` of `total` (counting from 1) has started: `label`.
    pub fn step(&mut self, done: usize, total: usize, label: &str) {
        match self.mode {
            Mode::Silent => {}
            Mode::Plain => eprintln!("[{done}/{total}] {label}"),
            Mode::Line => self.draw(&format!("[{done:>2}/{total}] {label}")),
        }
    }

    /// A progress bar at `fraction` (0 to 1) with `label`; on a terminal
    /// only (the plain form is written by [`Progress::note`]).
    pub fn bar(&mut self, fraction: f64, label: &str) {
        if self.mode != Mode::Line {
            return;
        }
        // At most about ten redraws a second, but at once for a new label.
        let now = Instant::now();
        if let Some((at, last)) = &self.last_bar {
            if last == label && now.duration_since(*at) < Duration::from_millis(100) {
                return;
            }
        }
        self.last_bar = Some((now, label.to_string()));
        const CELLS: usize = 24;
        let fraction = fraction.clamp(0.0, 1.0);
        let full = (fraction * CELLS as f64).round() as usize;
        let bar = format!("{}{}", "#".repeat(full), ".".repeat(CELLS - full));
        let elapsed = self.started.elapsed().as_secs_f64();
        self.draw(&format!(
            "[{bar}] {:>3.0}% {elapsed:>4.0}s  {label}",
            fraction * 100.0
        ));
    }

    /// A plain line when stderr is not a terminal (nothing on a terminal,
    /// where the bar shows the same).
    pub fn note(&mut self, line: &str) {
        if self.mode == Mode::Plain {
            eprintln!("{line}");
        }
    }

    fn draw(&mut self, text: &str) {
        let text: String = text.chars().take(self.width.saturating_sub(1)).collect();
        let mut err = std::io::stderr().lock();
        if self.dumb {
            // No escape codes: overwrite the old text with spaces.
            let blank = " ".repeat(self.drawn_len);
            let _ = write!(err, "\r{blank}\r{text}");
        } else {
            // \r, then erase the line, then the new text.
            let _ = write!(err, "\r\x1b[2K{text}");
        }
        let _ = err.flush();
        self.drawn = true;
        self.drawn_len = text.chars().count();
    }

    /// Removes the progress line, if one is drawn.
    pub fn finish(&mut self) {
        if self.mode == Mode::Line && self.drawn {
            let mut err = std::io::stderr().lock();
            if self.dumb {
                let _ = write!(err, "\r{}\r", " ".repeat(self.drawn_len));
            } else {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("a b c", None), ["a b c"]);
        let lines = wrap("one two three four five six seven", Some(20));
        assert_eq!(lines, ["one two three four", "five six seven"]);
        let long = "x".repeat(45);
        let lines = wrap(&long, Some(20));
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() <= 20));
        assert_eq!(wrap("", Some(30)), [""]);
    }

    #[test]
    fn padding() {
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad_left("ab", 4), "  ab");
        assert_eq!(pad("abcdef", 4), "abcdef");
    }
}
