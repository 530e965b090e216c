//! Per-worker shards of the per-request metrics (issue 12, scaling with cores): a counter or
//! histogram that every proxy worker updates on every request keeps one cache line per worker,
//! so two workers never write the same line; a scrape sums the shards. `metrics` uses these as
//! the value types of its per-route families, so the series, their labels and their values at
//! scrape are what prometheus-client's own `Counter` and `Histogram` gave.
//!
//! Which shard a thread writes is a thread-local index that `proxy::workers` sets on each worker
//! thread ([`set_thread_shard`]); every other thread (the control plane's runtime, tests) writes
//! shard 0. Shards are atomics, so two threads on one shard stay correct, only slower.
//! The number of shards is fixed when a metric is created ([`set_shards`], at most
//! [`MAX_SHARDS`]); a worker whose index has no shard of its own writes shard 0.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// More shards than this cost memory (one cache line per shard and series) for little: workers
/// beyond it share shards (index modulo this), which is correct and rarely contended.
pub const MAX_SHARDS: usize = 16;

/// How many shards metrics created from now on get (1 until the workers start).
static SHARDS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Sets the shard count for metrics created from now on: one per worker, up to [`MAX_SHARDS`].
/// Never lowers it (tests start several proxies in one process).
pub fn set_shards(workers: usize) {
    SHARDS.fetch_max(workers.clamp(1, MAX_SHARDS), Ordering::Relaxed);
}

/// Makes this thread write shard `index % MAX_SHARDS` (called once by each proxy worker).
pub fn set_thread_shard(index: usize) {
    SHARD.with(|s| s.set(index % MAX_SHARDS));
}

fn shard_count() -> usize {
    SHARDS.load(Ordering::Relaxed)
}

/// This thread's shard of `shards` (shard 0 when it has none of its own).
#[inline]
fn mine<T>(shards: &[T]) -> &T {
    let index = SHARD.with(Cell::get);
    shards.get(index).unwrap_or(&shards[0])
}

/// One cache line (128 bytes: two 64-byte lines, as adjacent-line prefetching pairs them).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line<T>(T);

/// A monotonic counter with one cell per worker, summed at scrape.
#[derive(Debug, Clone)]
pub struct Counter {
    shards: Arc<[Line<AtomicU64>]>,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            shards: (0..shard_count()).map(|_| Line::default()).collect(),
        }
    }
}

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.inc_by(1);
    }

    #[inline]
    pub fn inc_by(&self, v: u64) {
        mine(&self.shards).0.fetch_add(v, Ordering::Relaxed);
    }

    /// The sum over every shard.
    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

impl TypedMetric for Counter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Counter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The bucket upper bounds of the request latency histograms, seconds: 1 ms … ~33 s, then
/// +Inf (prometheus-client's `exponential_buckets(0.001, 2.0, 16)` and its implicit +Inf; a
/// unit test pins them equal).
const LATENCY_BOUNDS: [f64; 17] = [
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1.024,
    2.048,
    4.096,
    8.192,
    16.384,
    32.768,
    f64::INFINITY,
];
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS.len();

/// One worker's share of a latency histogram.
#[derive(Debug, Default)]
struct HistogramShard {
    /// The sum of observations, seconds, as `f64` bits. The count is the buckets' sum, so an
    /// observation is two atomic operations, as prometheus-client's lock and unlock.
    sum: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

/// A latency histogram (the buckets of `metrics::latency_histogram`) with one shard per worker,
/// summed at scrape. Only this thread's shard is written per observation, without a lock.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    shards: Arc<[Line<HistogramShard>]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            shards: (0..shard_count()).map(|_| Line::default()).collect(),
        }
    }
}

impl LatencyHistogram {
    pub fn observe(&self, seconds: f64) {
        let shard = &mine(&self.shards).0;
        // The first bucket whose bound is at least the value (NaN: +Inf), as prometheus-client.
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|&bound| bound >= seconds)
            .unwrap_or(LATENCY_BUCKETS - 1);
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Another thread on this shard is rare (only non-worker threads share shard 0): the
        // compare-exchange succeeds first time.
        let _ = shard
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
    }

    /// Sum, count and per-bucket (not cumulative) counts over every shard.
    pub fn snapshot(&self) -> (f64, u64, [(f64, u64); LATENCY_BUCKETS]) {
        let mut buckets: [(f64, u64); LATENCY_BUCKETS] =
            std::array::from_fn(|i| (LATENCY_BOUNDS[i], 0));
        let mut sum = 0.0;
        for shard in self.shards.iter() {
            let shard = &shard.0;
            sum += f64::from_bits(shard.sum.load(Ordering::Relaxed));
            for (total, b) in buckets.iter_mut().zip(&shard.buckets) {
                total.1 = total.1.wrapping_add(b.load(Ordering::Relaxed));
            }
        }
        let count = buckets
            .iter()
            .fold(0u64, |count, b| count.wrapping_add(b.1));
        (sum, count, buckets)
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_bounds_are_prometheus_clients_exponential_buckets() {
        let expected: Vec<f64> =
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16)
                .chain(std::iter::once(f64::INFINITY))
                .collect();
        assert_eq!(LATENCY_BOUNDS.to_vec(), expected);
    }

    #[test]
    fn shards_written_by_several_threads_sum_at_scrape() {
        set_shards(4);
        let counter = Counter::default();
        let histogram = LatencyHistogram::default();
        assert!(counter.shards.len() >= 4);
        std::thread::scope(|scope| {
            for worker in 0..4 {
                let (counter, histogram) = (&counter, &histogram);
                scope.spawn(move || {
                    set_thread_shard(worker);
                    for _ in 0..1000 {
                        counter.inc();
                        histogram.observe(0.003);
                    }
                    counter.inc_by(5);
                });
            }
        });
        // Each worker wrote its own line.
        assert!(counter.shards[..4]
            .iter()
            .all(|s| s.0.load(Ordering::Relaxed) == 1005));
        assert_eq!(counter.get(), 4020);
        let (sum, count, buckets) = histogram.snapshot();
        assert_eq!(count, 4000);
        assert!((sum - 12.0).abs() < 1e-6, "{sum}");
        // 3 ms falls in the 4 ms bucket (the third).
        assert_eq!(buckets[2], (0.004, 4000));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 4000);
    }

    #[test]
    fn a_worker_beyond_the_shards_writes_shard_zero() {
        let counter = Counter {
            shards: (0..1).map(|_| Line::default()).collect(),
        };
        std::thread::scope(|scope| {
            scope.spawn(|| {
                set_thread_shard(7);
                counter.inc();
            });
        });
        assert_eq!(counter.shards[0].0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn encodes_like_prometheus_clients_histogram() {
        use prometheus_client::encoding::text::encode;
        use prometheus_client::registry::Registry;
        let ours = LatencyHistogram::default();
        let theirs = prometheus_client::metrics::histogram::Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16),
        );
        for v in [0.0005, 0.001, 0.0011, 0.25, 40.0, f64::NAN] {
            ours.observe(v);
            theirs.observe(v);
        }
        let text = |metric: Box<dyn FnOnce(&mut Registry)>| {
            let mut registry = Registry::default();
            metric(&mut registry);
            let mut out = String::new();
            encode(&mut out, &registry).unwrap();
            out
        };
        let a = text(Box::new(move |r| r.register("d", "h", ours)));
        let b = text(Box::new(move |r| r.register("d", "h", theirs)));
        assert_eq!(a, b);
    }
}
