//! The doctor's report: what `--json` prints, and the table it prints
//! otherwise.

use serde::Serialize;
use serde_json::Value;

use super::{Check, Kind, Outcome};
use crate::platform;
use crate::ui::{pad, wrap, Paint, Style};

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    pub memguard_version: &'static str,
    /// The OS, kernel, machine, user, and what else the OS's module adds.
    pub system: Value,
    pub checks: Vec<Check>,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub info: usize,
    pub degraded: usize,
    pub failed: usize,
    /// True when no check failed (the exit status is then 0).
    pub passed: bool,
    pub elapsed_ms: u64,
}

impl Outcome {
    /// The result column's word.
    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Info => "info",
            Outcome::Degraded => "degraded",
            Outcome::Failed => "failed",
        }
    }

    /// The result column's colour.
    fn paint(self) -> Paint {
        match self {
            Outcome::Ok => Paint::Green,
            Outcome::Info => Paint::Dim,
            Outcome::Degraded => Paint::Yellow,
            Outcome::Failed => Paint::Red,
        }
    }
}

/// The table, as the doctor prints it on a terminal or a pipe.
pub fn render(report: &Report, style: Style) -> String {
    let name_w = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let result_w = 8;
    let indent = name_w + 2 + result_w + 2;
    let text_w = style.width.map(|w| w.saturating_sub(indent).max(30));
    let blank = " ".repeat(indent);
    let sys = &report.system;
    let field = |k: &str| sys[k].as_str().unwrap_or("?").to_string();
    let mut s = String::new();
    s.push_str(&style.paint(
        Paint::Bold,
        &format!(
            "memguard doctor: memguard {} on {} {} {}, {}",
            report.memguard_version,
            platform::OS,
            field("kernel"),
            field("machine"),
            field("user")
        ),
    ));
    s.push_str("\n\n");
    s.push_str(&style.paint(
        Paint::Bold,
        &format!(
            "{}  {}  EVIDENCE",
            pad("CHECK", name_w),
            pad("RESULT", result_w)
        ),
    ));
    s.push('\n');
    let mut last_kind = Kind::System;
    for c in &report.checks {
        if c.kind != last_kind {
            last_kind = c.kind;
            s.push_str(&style.paint(Paint::Dim, "  (self-tests, each in a child process)"));
            s.push('\n');
        }
        let evidence = wrap(&c.evidence, text_w);
        for (i, line) in evidence.iter().enumerate() {
            if i == 0 {
                s.push_str(&pad(c.name, name_w));
                s.push_str("  ");
                s.push_str(&style.paint(c.result.paint(), &pad(c.result.word(), result_w)));
                s.push_str("  ");
            } else {
                s.push_str(&blank);
            }
            s.push_str(line);
            s.push('\n');
        }
        if let Some(fix) = &c.fix {
            let text = format!("fix: {fix}");
            for line in wrap(&text, text_w) {
                s.push_str(&blank);
                s.push_str(&style.paint(Paint::Cyan, &line));
                s.push('\n');
            }
        }
    }
    let sum = &report.summary;
    s.push('\n');
    let verdict = if sum.failed > 0 {
        style.paint(Paint::Red, "FAILED")
    } else if sum.degraded > 0 {
        style.paint(Paint::Yellow, "usable, with degraded protections")
    } else {
        style.paint(Paint::Green, "all protections hold")
    };
    s.push_str(&format!(
        "{} checks: {} ok, {} info, {} degraded, {} failed, in {:.2} s: {verdict}\n",
        report.checks.len(),
        sum.ok,
        sum.info,
        sum.degraded,
        sum.failed,
        sum.elapsed_ms as f64 / 1000.0
    ));
    s
}
