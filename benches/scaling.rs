//! Issue 12, scaling with cores: what one request's metric updates cost when one and when two
//! worker threads update the same route's series at once. `prometheus` is what the series held
//! before (prometheus-client's `Counter`s and mutex-guarded `Histogram`s, one copy shared by
//! every worker); `sharded` is `portico::sharded` (a cache line per worker, summed at scrape);
//! `route_series` is the proxy's own call (`RouteSeries::request` + `upstream`) with the workers'
//! shard indices set as `proxy::workers` sets them.
//!
//! The figure is nanoseconds per request per thread: with no contention it is the same for one
//! and two threads (each thread does its own requests in parallel); a cache line written by
//! both threads makes the two-thread figure grow. Needs two idle cores to mean anything; on a
//! shared machine compare `prometheus` and `sharded` at two threads within one run.
//!
//! `cargo bench --bench scaling`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use portico::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Runs `op` `iters` times on each of `threads` threads at once (thread `i` with worker shard
/// `i`); the wall time of the slowest is the figure.
fn parallel<F: Fn() + Sync>(threads: usize, iters: u64, op: &F) -> Duration {
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let barrier = &barrier;
                scope.spawn(move || {
                    portico::sharded::set_thread_shard(index);
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn per_request(c: &mut Criterion) {
    portico::sharded::set_shards(2);
    let mut group = c.benchmark_group("metrics_per_request");
    group.sample_size(20);

    let (requests, bytes_in, bytes_out): (Counter, Counter, Counter) = Default::default();
    let (duration, upstream) = (
        Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        Histogram::new(exponential_buckets(0.001, 2.0, 16)),
    );
    let prometheus = || {
        duration.observe(black_box(0.0004));
        bytes_in.inc_by(black_box(0));
        bytes_out.inc_by(black_box(12));
        requests.inc();
        upstream.observe(black_box(0.0003));
    };

    let (s_requests, s_in, s_out) = (
        portico::sharded::Counter::default(),
        portico::sharded::Counter::default(),
        portico::sharded::Counter::default(),
    );
    let (s_duration, s_upstream) = (
        portico::sharded::LatencyHistogram::default(),
        portico::sharded::LatencyHistogram::default(),
    );
    let sharded = || {
        s_duration.observe(black_box(0.0004));
        s_in.inc_by(black_box(0));
        s_out.inc_by(black_box(12));
        s_requests.inc();
        s_upstream.observe(black_box(0.0003));
    };

    let metrics = Metrics::new();
    let series = metrics.route("bench", "bench", "up");
    let route_series = || {
        series.request(0, 200, Duration::from_micros(400), 0, 12);
        series.upstream(Duration::from_micros(300));
    };

    for threads in [1, 2] {
        group.bench_function(format!("prometheus/{threads}_threads"), |b| {
            b.iter_custom(|iters| parallel(threads, iters, &prometheus))
        });
        group.bench_function(format!("sharded/{threads}_threads"), |b| {
            b.iter_custom(|iters| parallel(threads, iters, &sharded))
        });
        group.bench_function(format!("route_series/{threads}_threads"), |b| {
            b.iter_custom(|iters| parallel(threads, iters, &route_series))
        });
    }
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
