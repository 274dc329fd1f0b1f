//! The `memguard` command.
//!
//! - `memguard doctor [--json]` checks, live on this machine, every
//!   protection the memguard crate relies on (limits, kernel settings, and
//!   self-tests run in child processes) and prints a table of results with
//!   the evidence and, where something is missing, the fix. It exits with 0
//!   when no check failed.
//! - `memguard bench [--json] [--quick] [--only <ids>]` measures memguard's
//!   operations next to the raw system calls and cipher they are built on,
//!   in the same run, and prints the ratios.
//!
//! Progress goes to stderr (one redrawn line on a terminal); results go to
//! stdout, coloured only on a terminal and never with `NO_COLOR` set.

mod bench;
// Some operations are the criterion benchmarks' only (benches/ include this
// module); `bench::tests` runs every one.
#[allow(dead_code)]
mod benchops;
mod child;
mod doctor;
mod platform;
mod selftest;
mod ui;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Guarded, locked, encrypted memory for secrets: check this machine and
/// measure the costs.
#[derive(Debug, Parser)]
#[command(name = "memguard", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, live on this machine, every protection memguard relies on.
    ///
    /// Reads the limits and kernel settings that matter (page size,
    /// RLIMIT_MEMLOCK, core dumps, dumpable flag, ptrace scope, swap,
    /// memfd_secret, transparent huge pages) and runs self-tests in child
    /// processes (a guard page hit and a write to a frozen buffer must kill
    /// the child, smaps must show the locked/no-dump/wipe-on-fork flags, a
    /// seal/open round trip must hold, and a scan of a child's memory must
    /// not find a sealed secret). Prints each check's result (ok, degraded
    /// or failed), the evidence and the fix. Exits with 0 when nothing
    /// failed, 1 otherwise. Takes a second or two.
    Doctor(DoctorArgs),
    /// Measure memguard's operations next to their raw floors.
    ///
    /// LockedBuffer new+drop (32 B, 4 KiB, 1 MiB) against the raw system
    /// calls that give the same protections; freeze+melt against two
    /// mprotects; Enclave new and open_into (32 B to 1 MiB) and Stream
    /// write/read (1 MiB in 16 KiB chunks) against the XSalsa20-Poly1305
    /// cipher itself, Enclave open against the cipher inside a raw guarded
    /// mapping; purge with 1, 100 and 10,000 live buffers against tearing
    /// down as many raw guarded mappings. Both sides
    /// are timed in the same run, in alternating batches; the figures are
    /// medians. Takes about 30 s (5 s with --quick). An operation this
    /// machine cannot run (too small an RLIMIT_MEMLOCK) is skipped, with
    /// the reason; the exit status is 1 only when an operation failed.
    Bench(BenchArgs),
    /// Runs one self-test for `doctor` (internal).
    #[command(hide = true)]
    Selftest(SelftestArgs),
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// Print the report as JSON: {checks: [{name, kind, result, evidence,
    /// fix}], summary, system}.
    #[arg(long)]
    json: bool,
    /// Print the table of checks of this OS as JSON, without running them
    /// (internal: the CLI's tests read their expectations from it).
    #[arg(long, hide = true, conflicts_with = "json")]
    list: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Print the results as JSON: {operations: [{id, operation, memguard_ns,
    /// floor_ns, ratio, bytes, ...}], ...}.
    #[arg(long)]
    json: bool,
    /// A short run of about 5 seconds (less precise).
    #[arg(long, conflicts_with = "seconds")]
    quick: bool,
    /// The time budget of the whole run, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0,
          value_parser = parse_seconds)]
    seconds: f64,
    /// Run only these operations (comma-separated): an id with a `/` names
    /// one operation exactly (`purge/100`), a name without one every
    /// operation of the groups it begins (`lifecycle`, `enclave`,
    /// `enclave_open`). Ids: lifecycle/BYTES, lifecycle_min/32, freeze_melt,
    /// enclave_new/BYTES, enclave_open/BYTES, enclave_open_into/BYTES,
    /// stream_write/1048576, stream_read/1048576, purge/N.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    only: Vec<String>,
}

#[derive(Debug, Args)]
struct SelftestArgs {
    /// The self-test to play.
    test: selftest::Test,
    /// Opt out of the process hardening first.
    #[arg(long)]
    unhardened: bool,
}

/// Parses `--seconds`: a positive number up to an hour.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a number of seconds between 0 and 3600"
        )),
    }
}

/// Parses the arguments and runs the subcommand.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor(args) if args.list => doctor::list(),
        Command::Doctor(args) => doctor::run(args.json),
        Command::Bench(args) => {
            let seconds = if args.quick { 5.0 } else { args.seconds };
            bench::run(&bench::Options {
                budget: Duration::from_secs_f64(seconds),
                only: args.only,
                json: args.json,
            })
        }
        Command::Selftest(args) => doctor::selftest(args.test, args.unhardened),
    }
}
