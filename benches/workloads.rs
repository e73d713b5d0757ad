//! The workloads of `docs/WORKLOADS.md`, timed side by side: sdelab through its public
//! closure API (`SdeFn` + `Solver` + `SdePaths` + `Ensemble::run`) against an equivalent
//! hand-fused loop, at 1 and at 2 rayon threads, in one criterion group per workload.
//!
//! The fused loop draws the same numbers as sdelab (path `p` owns `derive_stream(SEED, p)`, the
//! normals are drawn in the same order and combined with the same arithmetic) and reduces them
//! the same way (chunks of `CHUNK` paths folded with Welford, merged in chunk order), so before a
//! workload is timed the bench checks, once, that both give the same mean and that the mean is
//! within a few standard errors of the checked value of WORKLOADS.md.
//!
//! ```text
//! cargo bench -p sde-core --bench workloads            # all workloads
//! cargo bench -p sde-core --bench workloads -- W1      # one workload
//! ```
//!
//! Medians: `target/criterion/<group>/<id>/new/estimates.json` (see benches/README.md).

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use rand::RngExt;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use rayon::ThreadPool;
use sde_core::ensemble::CHUNK;
use sde_core::*;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, SystemTime};

const SEED: u64 = 20_261_128;
const THREADS: [usize; 2] = [1, 2];
const STEPS: usize = 1000;
const H: f64 = 1.0 / STEPS as f64;

/// W1, W2: state dimension and number of paths.
const D: usize = 10;
const PATHS_10D: u64 = 10_000;
/// W1: `dX = −A X dt + s dW`, `A = diag(linspace(1, 10, d))`.
const OU_S: f64 = 0.1;
/// W2: `dX = −X³ dt + sqrt(η) σ dW`.
const QUARTIC_ETA: f64 = 0.01;
const QUARTIC_SIGMA: f64 = 1.0;
/// W3: `dX = μ X dt + σ X dW`, Milstein.
const GBM_MU: f64 = 0.05;
const GBM_SIGMA: f64 = 0.2;
const GBM_PATHS: u64 = 100_000;

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// W1, W2: Euler–Maruyama paths of `sde` (d = 10) over `[0, 1]` from `x0 = 1`, observing
/// `Σ_i g(x_i)` at the horizon only.
fn em_paths_10d<S: Sde, G: Fn(f64) -> f64 + Sync>(
    sde: &S,
    g: G,
) -> impl PathSimulation + use<'_, S, G> {
    let solver = Solver::new(sde, EulerMaruyama, Gaussian).unwrap();
    let grid = Grid::new(0.0, 1.0, STEPS).unwrap().save_final();
    SdePaths::new(solver, grid, &[1.0; D])
        .unwrap()
        .observe_with(1, move |_t, x: &[f64], o: &mut [f64]| {
            o[0] = x.iter().map(|&v| g(v)).sum()
        })
}

fn ou_rates() -> [f64; D] {
    std::array::from_fn(|i| 1.0 + 9.0 * i as f64 / (D - 1) as f64)
}

// ---------------------------------------------------------------------------------------------
// The fused loops: one function per workload computing one path's observable, and one driver
// that splits the paths over the current rayon pool and reduces them as `Ensemble::run` does.
// ---------------------------------------------------------------------------------------------

/// Welford statistics of `value(p)` over `paths` paths: chunks of `CHUNK` consecutive paths are
/// folded in order and the chunk results merged in chunk order (the reduction of
/// `Ensemble::run`, so both give the same bits).
fn fused_ensemble(paths: u64, value: impl Fn(u64) -> f64 + Sync) -> Welford {
    let chunk = CHUNK as u64;
    let parts: Vec<Welford> = (0..paths.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut acc = Welford::default();
            for p in c * chunk..((c + 1) * chunk).min(paths) {
                acc.push(value(p));
            }
            acc
        })
        .collect();
    let mut total = Welford::default();
    for part in &parts {
        total.merge(part);
    }
    total
}

/// W1, one path: `‖X_T‖²`.
#[inline]
fn ou_fused_path(p: u64, rates: &[f64; D]) -> f64 {
    let mut rng = derive_stream(SEED, p);
    let sqh = H.sqrt();
    let mut x = [1.0f64; D];
    for _ in 0..STEPS {
        for (xi, ai) in x.iter_mut().zip(rates) {
            let z: f64 = rng.sample(StandardNormal);
            *xi += -ai * *xi * H + OU_S * (sqh * z);
        }
    }
    x.iter().map(|v| v * v).sum()
}

/// W2, one path: `Σ x_j⁴ / 4` at `T`.
#[inline]
fn quartic_fused_path(p: u64) -> f64 {
    let mut rng = derive_stream(SEED, p);
    let sqh = H.sqrt();
    let s = QUARTIC_ETA.sqrt() * QUARTIC_SIGMA;
    let mut x = [1.0f64; D];
    for _ in 0..STEPS {
        for xi in x.iter_mut() {
            let z: f64 = rng.sample(StandardNormal);
            *xi += -(*xi * *xi * *xi) * H + s * (sqh * z);
        }
    }
    x.iter().map(|v| v * v * v * v / 4.0).sum()
}

/// W3, one path: `X_T` (Milstein with the exact correction `½ σ (σ X) (ΔW² − h)`). With
/// `STRONG`, `|X_T − X_exact(T)|` on the same Brownian path instead.
#[inline]
fn gbm_fused_path<const STRONG: bool>(p: u64) -> f64 {
    let mut rng = derive_stream(SEED, p);
    let sqh = H.sqrt();
    let mut x = 1.0f64;
    let mut w_t = 0.0;
    for _ in 0..STEPS {
        let z: f64 = rng.sample(StandardNormal);
        let w = sqh * z;
        let (a, b) = (GBM_MU * x, GBM_SIGMA * x);
        x = x + a * H + b * w + 0.5 * (GBM_SIGMA * b) * (w * w - H);
        if STRONG {
            w_t += w;
        }
    }
    if STRONG {
        let exact = ((GBM_MU - 0.5 * GBM_SIGMA * GBM_SIGMA) + GBM_SIGMA * w_t).exp();
        (x - exact).abs()
    } else {
        x
    }
}

// ---------------------------------------------------------------------------------------------
// The checks, run once per workload (only when one of its benchmarks is selected).
// ---------------------------------------------------------------------------------------------

/// Asserts that sdelab and the fused loop agree (to rounding of the reduction; they draw the
/// same numbers) and that both are within 4 standard errors of the checked value.
fn check(name: &str, sdelab: &[Summary], fused: &[Welford], expected: f64) {
    same_bits_at_every_thread_count(name, "sdelab", sdelab.iter().map(|s| s.mean));
    same_bits_at_every_thread_count(name, "fused loop", fused.iter().map(|f| f.mean));
    let (s, f) = (sdelab[0], fused[0]);
    assert_eq!(s.count, f.count, "{name}: path counts differ");
    assert!(
        (s.mean - f.mean).abs() <= 1e-12 * f.mean.abs(),
        "{name}: sdelab {} vs fused {}",
        s.mean,
        f.mean
    );
    assert!(
        (s.mean - expected).abs() < 4.0 * s.std_err,
        "{name}: mean {} is {:.1} standard errors from the checked value {expected}",
        s.mean,
        (s.mean - expected) / s.std_err
    );
    eprintln!(
        "{name}: sdelab {:.6} ± {:.6} (1 SE), fused {:.6}, checked value {expected:.6} ({:+.2} SE); \
         sdelab and fused {}",
        s.mean,
        s.std_err,
        f.mean,
        (s.mean - expected) / s.std_err,
        if s.mean.to_bits() == f.mean.to_bits() {
            "bit-identical"
        } else {
            "differ in the last bits"
        }
    );
}

/// Asserts that `means` (one per entry of [`THREADS`]) have the bits of the 1-thread one.
fn same_bits_at_every_thread_count(name: &str, what: &str, mut means: impl Iterator<Item = f64>) {
    let Some(first) = means.next() else { return };
    for (k, other) in means.enumerate() {
        assert_eq!(
            other.to_bits(),
            first.to_bits(),
            "{name}: {what} at {} threads differs from 1 thread",
            THREADS[k + 1]
        );
    }
}

/// Ten samples of one iteration each (an iteration is a whole ensemble, 0.2–1 s), so that
/// `measurement_seconds` must cover about ten runs of the slowest (1-thread) benchmark.
fn group_settings<'a>(
    c: &'a mut Criterion,
    name: &str,
    measurement_seconds: u64,
) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(measurement_seconds));
    g
}

/// One workload's benchmarks: sdelab and the fused loop at every thread count of `pools`. The
/// first benchmark selected runs `checks` on both at every thread count (a filter that selects
/// none of them skips the checks too).
fn bench_workload(
    c: &mut Criterion,
    name: &str,
    measurement_seconds: u64,
    pools: &[ThreadPool],
    sdelab: impl Fn(&ThreadPool) -> Summary,
    fused: impl Fn(&ThreadPool) -> Welford,
    checks: impl Fn(&[Summary], &[Welford]),
) {
    let checked = Once::new();
    let check_once = || {
        checked.call_once(|| {
            let s: Vec<Summary> = pools.iter().map(&sdelab).collect();
            let f: Vec<Welford> = pools.iter().map(&fused).collect();
            checks(&s, &f);
        })
    };
    let mut g = group_settings(c, name, measurement_seconds);
    for (pool, &k) in pools.iter().zip(&THREADS) {
        g.bench_function(BenchmarkId::new("sdelab", k), |b| {
            check_once();
            b.iter(|| black_box(sdelab(pool)))
        });
        g.bench_function(BenchmarkId::new("fused", k), |b| {
            check_once();
            b.iter(|| black_box(fused(pool)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// W1: Ornstein–Uhlenbeck, d = 10, Euler–Maruyama.
// ---------------------------------------------------------------------------------------------

/// `E ‖X_T‖²` of the Euler–Maruyama chain: per coordinate `X_N = r^N + s √h Σ r^k Z_k` with
/// `r = 1 − a h`, so `E X_N² = r^{2N} + s² h (1 − r^{2N}) / (1 − r²)`.
fn ou_em_exact() -> f64 {
    ou_rates()
        .iter()
        .map(|a| {
            let r = 1.0 - a * H;
            let r2n = (r * r).powi(STEPS as i32);
            r2n + OU_S * OU_S * H * (1.0 - r2n) / (1.0 - r * r)
        })
        .sum()
}

fn w1_ou(c: &mut Criterion) {
    let rates = ou_rates();
    let sde = SdeFn::new(
        D,
        NoiseShape::Diagonal,
        move |_t, x: &[f64], a: &mut [f64]| {
            for ((ai, xi), ri) in a.iter_mut().zip(x).zip(&rates) {
                *ai = -ri * xi;
            }
        },
        |_t, _x: &[f64], b: &mut [f64]| b.fill(OU_S),
    )
    .unwrap();
    let paths = em_paths_10d(&sde, |v| v * v);
    let ensemble = Ensemble::new(PATHS_10D, SEED).unwrap();
    let pools: Vec<ThreadPool> = THREADS.iter().map(|&k| pool(k)).collect();
    let sdelab = |pool: &ThreadPool| pool.install(|| ensemble.run(&paths)).summary(1, 0);
    let fused = |pool: &ThreadPool| {
        pool.install(|| fused_ensemble(PATHS_10D, |p| ou_fused_path(p, &rates)))
    };

    bench_workload(c, "W1_ou", 5, &pools, sdelab, fused, |s, f| {
        let exact = ou_em_exact();
        assert!((exact - 0.170223).abs() < 5e-7, "EM chain value {exact}");
        check("W1 ou: E‖X_T‖²", s, f, exact);
    });
}

// ---------------------------------------------------------------------------------------------
// W2: quartic potential, d = 10, Euler–Maruyama.
// ---------------------------------------------------------------------------------------------

fn w2_quartic(c: &mut Criterion) {
    let s = QUARTIC_ETA.sqrt() * QUARTIC_SIGMA;
    let sde = SdeFn::new(
        D,
        NoiseShape::Diagonal,
        |_t, x: &[f64], a: &mut [f64]| {
            for (ai, xi) in a.iter_mut().zip(x) {
                *ai = -(xi * xi * xi);
            }
        },
        move |_t, _x: &[f64], b: &mut [f64]| b.fill(s),
    )
    .unwrap();
    let paths = em_paths_10d(&sde, |v| v * v * v * v / 4.0);
    let ensemble = Ensemble::new(PATHS_10D, SEED).unwrap();
    let pools: Vec<ThreadPool> = THREADS.iter().map(|&k| pool(k)).collect();
    let sdelab = |pool: &ThreadPool| pool.install(|| ensemble.run(&paths)).summary(1, 0);
    let fused = |pool: &ThreadPool| pool.install(|| fused_ensemble(PATHS_10D, quartic_fused_path));

    bench_workload(c, "W2_quartic", 5, &pools, sdelab, fused, |s, f| {
        check("W2 quartic: E Σ x⁴/4", s, f, 0.290343);
    });
}

// ---------------------------------------------------------------------------------------------
// W3: geometric Brownian motion, d = 1, Milstein with the supplied diffusion derivative.
// ---------------------------------------------------------------------------------------------

fn w3_gbm(c: &mut Criterion) {
    let sde = SdeFn::new(
        1,
        NoiseShape::Scalar,
        |_t, x: &[f64], a: &mut [f64]| a[0] = GBM_MU * x[0],
        |_t, x: &[f64], b: &mut [f64]| b[0] = GBM_SIGMA * x[0],
    )
    .unwrap()
    .with_derivative(|_t, _x: &[f64], v: &[f64], out: &mut [f64]| out[0] = GBM_SIGMA * v[0]);
    let solver = Solver::new(&sde, Milstein::default(), Gaussian).unwrap();
    let grid = Grid::new(0.0, 1.0, STEPS).unwrap().save_final();
    let paths = SdePaths::new(solver, grid, &[1.0]).unwrap();
    let ensemble = Ensemble::new(GBM_PATHS, SEED).unwrap();
    let pools: Vec<ThreadPool> = THREADS.iter().map(|&k| pool(k)).collect();
    let sdelab = |pool: &ThreadPool| pool.install(|| ensemble.run(&paths)).summary(1, 0);
    let fused =
        |pool: &ThreadPool| pool.install(|| fused_ensemble(GBM_PATHS, gbm_fused_path::<false>));

    bench_workload(c, "W3_gbm", 11, &pools, sdelab, fused, |s, f| {
        let expected = (1.0 + GBM_MU * H).powi(STEPS as i32);
        assert!(
            (expected - 1.051270).abs() < 5e-7,
            "Milstein chain value {expected}"
        );
        check("W3 gbm: E X_T", s, f, expected);
        // Strong error of the same chain (the fused loop draws sdelab's numbers).
        let strong = pools[0].install(|| fused_ensemble(GBM_PATHS, gbm_fused_path::<true>));
        assert!(
            (strong.mean - 8.9e-6).abs() < 0.5e-6,
            "W3 strong error {} (expected about 8.9e-6)",
            strong.mean
        );
        eprintln!(
            "W3 gbm: strong error E|X_T − X_exact| = {:.3e}",
            strong.mean
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Summary: the medians criterion just wrote, side by side.
// ---------------------------------------------------------------------------------------------

/// Median seconds of `group/id/threads` from criterion's `estimates.json`, if it was written
/// by this run (a filter skips groups; test mode writes nothing).
fn median_seconds(
    root: &Path,
    group: &str,
    id: &str,
    threads: usize,
    since: SystemTime,
) -> Option<f64> {
    let file = root
        .join(group)
        .join(id)
        .join(threads.to_string())
        .join("new/estimates.json");
    if file.metadata().ok()?.modified().ok()? < since {
        return None;
    }
    let json = std::fs::read_to_string(file).ok()?;
    let median = &json[json.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse::<f64>().ok().map(|ns| ns * 1e-9)
}

/// Prints workload × threads × (sdelab median, fused median, ratio) and the 2-thread speedups.
fn print_summary(since: SystemTime) {
    // `<target>/release/deps/workloads-…` → `<target>/criterion`, as criterion resolves it.
    let root = match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => PathBuf::from(dir).join("criterion"),
            None => match std::env::current_exe()
                .ok()
                .and_then(|e| e.parent()?.parent()?.parent().map(|t| t.join("criterion")))
            {
                Some(dir) => dir,
                None => return,
            },
        },
    };
    let mut rows = Vec::new();
    for (group, target) in [("W1_ou", 1.1), ("W2_quartic", 1.1), ("W3_gbm", 1.2)] {
        let med = |id: &str, k: usize| median_seconds(&root, group, id, k, since);
        let mut times = Vec::new();
        for k in THREADS {
            if let (Some(s), Some(f)) = (med("sdelab", k), med("fused", k)) {
                rows.push(format!(
                    "| {group} | {k} | {s:.3} | {f:.3} | {:.3} | ≤ {target} |",
                    s / f
                ));
                times.push((s, f));
            }
        }
        if let [(s1, f1), (s2, f2)] = times[..] {
            rows.push(format!(
                "| {group} | 2-thread speedup | {:.2}× | {:.2}× | | ≥ 1.8× |",
                s1 / s2,
                f1 / f2
            ));
        }
    }
    if !rows.is_empty() {
        println!(
            "\n| workload | threads | sdelab median (s) | fused median (s) | ratio | target |"
        );
        println!("|---|---|---|---|---|---|");
        for row in rows {
            println!("{row}");
        }
    }
}

criterion_group!(workloads, w1_ou, w2_quartic, w3_gbm);

fn main() {
    let since = SystemTime::now();
    workloads();
    Criterion::default().configure_from_args().final_summary();
    print_summary(since);
}
