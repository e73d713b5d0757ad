//! ns per step of Platen's weak-2 scheme against Euler–Maruyama on the SDE models (B) of DSGD,
//! DCSGD and DSignSGD, d = 3 and d = 10, N = 4 heterogeneous agents, mixed quadratic–quartic
//! loss (separable), constant schedule. Target (issue 13): weak2 ≤ 3× EM per step where the
//! noise structure allows (state-independent or coordinatewise diffusion).
//!
//! | case | diffusion | declared |
//! |---|---|---|
//! | `dsgd` (σ1 = 0) | constant | state-independent `Diagonal` |
//! | `dsgd_s1` (σ1 = 0.3) | depends on `‖∇f‖` | `General` |
//! | `dcsgd_bern` (p = 0.5, σ1 = 0) | `b_jj(x_j)` | `Diagonal` |
//! | `dsignsgd` (Gaussian, σ1 = 0) | `b_jj(x_j)` | `Diagonal` |
//!
//! After the criterion groups a summary prints the ratio weak2 / EM (best of 5 × 100k steps).

use criterion::{BenchmarkId, Criterion};
use models::compress::{BernoulliSparsifier, CompressorKind, Identity};
use models::loss::MixedQuadraticQuartic;
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, GradientMethod};
use models::noise::GaussianNoise;
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use models::sde::SdeModel;
use sde_core::{derive_stream, EulerMaruyama, PlatenWeak2, Scheme, Sde, Step};
use std::hint::black_box;
use std::time::Instant;

fn agents(d: usize, sigma1: f64, compressor: CompressorKind) -> Vec<Agent> {
    (0..4)
        .map(|i| Agent {
            noise: GaussianNoise::isotropic(d, 0.5 + 0.25 * i as f64, sigma1)
                .unwrap()
                .into(),
            compressor,
        })
        .collect()
}

fn opt<M: GradientMethod>(d: usize, method: M) -> Optimizer<MixedQuadraticQuartic, M> {
    Optimizer::new(
        MixedQuadraticQuartic::new(vec![1.0; d], vec![0.5; d]).unwrap(),
        method,
        Schedule::constant(),
    )
    .unwrap()
}

/// A closure doing one step from a fixed state (so every call costs the same).
fn stepper<'a, S: Sde, K: Scheme + 'a>(sde: &'a S, scheme: K) -> Box<dyn FnMut() -> f64 + 'a> {
    let d = sde.dim();
    let m = sde.noise().noise_dim(d);
    let x0: Vec<f64> = (0..d).map(|j| 0.2 + 0.15 * j as f64).collect();
    let dw: Vec<f64> = (0..m).map(|j| 0.1 * (1.0 + j as f64).sin()).collect();
    let mut ws = scheme.workspace(sde);
    let mut rng = derive_stream(3, 0);
    let mut x = x0.clone();
    Box::new(move || {
        x.copy_from_slice(&x0);
        scheme.step(sde, &mut x, Step::new(0.0, 0.01, &dw, &mut rng), &mut ws);
        x[0]
    })
}

type Case<'a> = (
    String,
    Box<dyn FnMut() -> f64 + 'a>,
    Box<dyn FnMut() -> f64 + 'a>,
);

fn cases<'a, S: Sde>(name: &str, sde: &'a S) -> Case<'a> {
    (
        format!("{name}_d{}", sde.dim()),
        stepper(sde, EulerMaruyama),
        stepper(sde, PlatenWeak2),
    )
}

fn run(c: &mut Criterion) {
    let bern: CompressorKind = BernoulliSparsifier::new(0.5).unwrap().into();
    let id: CompressorKind = Identity.into();
    let eta = 0.05;
    let opts: Vec<_> = [3usize, 10]
        .iter()
        .map(|&d| {
            (
                opt(d, Dsgd::new(agents(d, 0.0, id)).unwrap()),
                opt(d, Dsgd::new(agents(d, 0.3, id)).unwrap()),
                opt(d, Dcsgd::new(agents(d, 0.0, bern)).unwrap()),
                opt(d, DsignSgd::new(agents(d, 0.0, id)).unwrap()),
            )
        })
        .collect();
    let sdes: Vec<_> = opts
        .iter()
        .map(|(a, b, c, s)| {
            (
                a.sde(SdeModel::SecondOrder, eta).unwrap(),
                b.sde(SdeModel::SecondOrder, eta).unwrap(),
                c.sde(SdeModel::SecondOrder, eta).unwrap(),
                s.sde(SdeModel::SecondOrder, eta).unwrap(),
            )
        })
        .collect();
    let mut all: Vec<Case<'_>> = Vec::new();
    for (a, b, c, s) in &sdes {
        all.push(cases("dsgd", a));
        all.push(cases("dsgd_s1", b));
        all.push(cases("dcsgd_bern", c));
        all.push(cases("dsignsgd", s));
    }
    for (name, em, w2) in all.iter_mut() {
        let mut group = c.benchmark_group(name.as_str());
        group.bench_function(BenchmarkId::new("euler_maruyama", ""), |b| {
            b.iter(|| black_box(em()))
        });
        group.bench_function(BenchmarkId::new("weak2", ""), |b| {
            b.iter(|| black_box(w2()))
        });
        group.finish();
    }
    let best = |f: &mut dyn FnMut() -> f64| {
        let reps = 100_000;
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    black_box(f());
                }
                t.elapsed().as_nanos() as f64 / reps as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    println!();
    println!(
        "{:<16} {:>10} {:>10} {:>8}",
        "model (B)", "EM ns", "weak2 ns", "ratio"
    );
    for (name, em, w2) in all.iter_mut() {
        let (te, tw) = (best(em.as_mut()), best(w2.as_mut()));
        println!("{name:<16} {te:>10.1} {tw:>10.1} {:>8.2}", tw / te);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    run(&mut c);
    c.final_summary();
}
