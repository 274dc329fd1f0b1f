//! Criterion's side of `cli/src/benchops.rs`: a row of a benchmark group
//! is one operation of `benchops` (or a `Body` of the bench's own), built
//! the first time criterion runs it and timed with `Bencher::iter_custom`
//! through `Body::time`, the same timing `memguard bench` uses.

use criterion::measurement::{Measurement, WallTime};
use criterion::{Bencher, BenchmarkGroup, BenchmarkId};

use crate::benchops::{Body, WallClock};

/// How a row is built: set-up outside every timing.
pub type Build = Box<dyn FnOnce() -> Result<Body, String>>;

/// `build` as a [`Build`], for a table of rows.
pub fn op(build: impl FnOnce() -> Result<Body, String> + 'static) -> Build {
    Box::new(build)
}

/// A measurement a [`Body`] can be timed with.
pub trait Timer: Measurement {
    /// The time of `iters` runs of `body`, as this measurement's value.
    fn time(body: &mut Body, iters: u64) -> Self::Value;
}

impl Timer for WallTime {
    fn time(body: &mut Body, iters: u64) -> std::time::Duration {
        body.time(iters, &WallClock)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Adds every row of `rows` (name, how it is built) to `group`, in order,
/// as `<name>/<parameter>` when a parameter is given. A row is built the
/// first time criterion runs it (not at all when a filter leaves it out),
/// and its body (with the memory it holds) is dropped before the next row
/// runs.
pub fn bench_rows<M: Timer>(
    group: &mut BenchmarkGroup<'_, M>,
    parameter: Option<&str>,
    rows: Vec<(&str, Build)>,
) {
    for (name, build) in rows {
        let mut build = Some(build);
        let mut body: Option<Body> = None;
        let mut routine = |b: &mut Bencher<'_, M>| {
            let body = body.get_or_insert_with(|| {
                let build = build.take().expect("a row is built once");
                build().unwrap_or_else(|e| panic!("{name}: set-up: {e}"))
            });
            b.iter_custom(|iters| M::time(body, iters));
        };
        match parameter {
            Some(p) => group.bench_function(BenchmarkId::new(name, p), &mut routine),
            None => group.bench_function(name, &mut routine),
        };
    }
}
