//! Cost of one optimizer iteration against the cost of its random numbers alone.
//!
//! `N = 8` agents in `d = 10` on the quartic loss `Σ x_j⁴/4`: one `Optimizer::step` of DSGD,
//! DCSGD (Bernoulli `p = 0.5`), DSignSGD (Student-t `ν = 1.5`) and DSignSGD (Gaussian), each next
//! to a baseline that draws exactly the same random numbers from the same `PathRng` in the same
//! order and does nothing else:
//!
//! | method | draws per iteration |
//! |---|---|
//! | DSGD | 80 normals |
//! | DCSGD Bernoulli | 80 normals + 80 uniforms |
//! | DSignSGD Student-t | 80 Student-t |
//! | DSignSGD Gaussian | 80 normals |
//!
//! After the criterion groups, a short fixed-length timing prints ns per iteration, draws per
//! iteration and the ratio iteration / baseline (target: at most 1.5). `ONLY=<prefix>` limits
//! that summary to the cases whose name starts with the prefix (e.g. for `perf record`).

use criterion::{BenchmarkId, Criterion};
use models::compress::{BernoulliSparsifier, CompressorKind, Identity};
use models::loss::Quartic;
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, GradientMethod};
use models::noise::{GaussianNoise, NoiseModel, StudentTNoise};
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal, StudentT};
use sde_core::{derive_stream, PathRng};
use std::hint::black_box;
use std::time::Instant;

const N: usize = 8;
const D: usize = 10;
const ETA: f64 = 0.01;
const NU: f64 = 1.5;

fn agents(noise: NoiseModel, compressor: CompressorKind) -> Vec<Agent> {
    vec![Agent { noise, compressor }; N]
}

fn gaussian() -> NoiseModel {
    GaussianNoise::isotropic(D, 1.0, 0.0).unwrap().into()
}

fn student() -> NoiseModel {
    StudentTNoise::isotropic(D, NU, 1.0, 0.0).unwrap().into()
}

fn opt<M: GradientMethod>(method: M) -> Optimizer<Quartic, M> {
    Optimizer::new(Quartic::standard(D).unwrap(), method, Schedule::constant()).unwrap()
}

/// The starting point of every timed iteration: gradients of order 0.1–1, where the signs are
/// genuinely random.
fn x0() -> Vec<f64> {
    (0..D).map(|j| 0.3 + 0.07 * j as f64).collect()
}

/// A closure doing one iteration (`x` reset to `x0`, then one step).
fn iteration<M: GradientMethod>(o: &Optimizer<Quartic, M>) -> impl FnMut(&mut PathRng) -> f64 + '_ {
    let start = x0();
    let mut x = start.clone();
    let mut ws = o.workspace();
    let mut k = 0u64;
    move |rng| {
        x.copy_from_slice(&start);
        o.step(k, ETA, &mut x, rng, &mut ws);
        k += 1;
        x[0]
    }
}

/// The baselines: the same draws in the same order, written to a `d`-buffer per agent as the
/// methods do (so neither side pays for a serial chain of additions), then summed.
fn normals(rng: &mut PathRng) -> f64 {
    let mut z = [0.0; D];
    let mut s = 0.0;
    for _ in 0..N {
        for zj in z.iter_mut() {
            *zj = rng.sample(StandardNormal);
        }
        s += z.iter().sum::<f64>();
    }
    s
}

fn normals_and_uniforms(rng: &mut PathRng) -> f64 {
    let (mut z, mut c) = ([0.0; D], [0.0; D]);
    let mut s = 0.0;
    for _ in 0..N {
        for zj in z.iter_mut() {
            *zj = rng.sample(StandardNormal);
        }
        for cj in c.iter_mut() {
            *cj = rng.random::<f64>();
        }
        s += z.iter().zip(&c).map(|(a, b)| a + b).sum::<f64>();
    }
    s
}

fn student_ts(dist: &StudentT<f64>) -> impl Fn(&mut PathRng) -> f64 + '_ {
    move |rng| {
        let mut z = [0.0; D];
        let mut s = 0.0;
        for _ in 0..N {
            for zj in z.iter_mut() {
                *zj = dist.sample(rng);
            }
            s += z.iter().sum::<f64>();
        }
        s
    }
}

type Case<'a> = (
    &'static str,
    usize,
    Box<dyn FnMut(&mut PathRng) -> f64 + 'a>,
    Box<dyn FnMut(&mut PathRng) -> f64 + 'a>,
);

fn run(c: &mut Criterion) {
    let dsgd = opt(Dsgd::new(agents(gaussian(), Identity.into())).unwrap());
    let bern = BernoulliSparsifier::new(0.5).unwrap();
    let dcsgd = opt(Dcsgd::new(agents(gaussian(), bern.into())).unwrap());
    let sign_t = opt(DsignSgd::new(agents(student(), Identity.into())).unwrap());
    let sign_g = opt(DsignSgd::new(agents(gaussian(), Identity.into())).unwrap());
    let t_dist = StudentT::new(NU).unwrap();
    let mut cases: Vec<Case<'_>> = vec![
        ("dsgd", N * D, Box::new(iteration(&dsgd)), Box::new(normals)),
        (
            "dcsgd_bernoulli_0.5",
            2 * N * D,
            Box::new(iteration(&dcsgd)),
            Box::new(normals_and_uniforms),
        ),
        (
            "dsignsgd_student_t_1.5",
            N * D,
            Box::new(iteration(&sign_t)),
            Box::new(student_ts(&t_dist)),
        ),
        (
            "dsignsgd_gaussian",
            N * D,
            Box::new(iteration(&sign_g)),
            Box::new(normals),
        ),
    ];

    for (name, _, it, base) in cases.iter_mut() {
        let mut group = c.benchmark_group(*name);
        let mut rng = derive_stream(1, 0);
        group.bench_function(BenchmarkId::new("iteration", N * D), |b| {
            b.iter(|| black_box(it(&mut rng)))
        });
        let mut rng = derive_stream(1, 0);
        group.bench_function(BenchmarkId::new("draws_only", N * D), |b| {
            b.iter(|| black_box(base(&mut rng)))
        });
        group.finish();
    }

    // Summary: best of 7 runs of 200k calls each (ns per call).
    let best = |f: &mut dyn FnMut(&mut PathRng) -> f64| {
        let mut rng = derive_stream(2, 0);
        let reps = 200_000;
        (0..7)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    black_box(f(&mut rng));
                }
                t.elapsed().as_nanos() as f64 / reps as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    println!();
    println!(
        "{:<24} {:>10} {:>12} {:>14} {:>8} {:>12}",
        "method", "draws/it", "ns/it", "ns/draws_only", "ratio", "ns/draw (base)"
    );
    for (name, draws, it, base) in cases.iter_mut() {
        if let Ok(only) = std::env::var("ONLY") {
            if !name.starts_with(&only) {
                continue;
            }
        }
        let t_it = best(it.as_mut());
        let t_base = best(base.as_mut());
        println!(
            "{:<24} {:>10} {:>12.1} {:>14.1} {:>8.2} {:>12.2}",
            name,
            draws,
            t_it,
            t_base,
            t_it / t_base,
            t_base / *draws as f64
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    run(&mut c);
    c.final_summary();
}
