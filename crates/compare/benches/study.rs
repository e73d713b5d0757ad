//! Whole weak-error studies against the time to draw their random numbers (issue 13).
//!
//! Each case is a coupled study of the three models of one optimizer (DSGD, DCSGD-Bernoulli,
//! DSignSGD with Student-t ν = 3 noise), N = 4 heterogeneous agents, on the separable mixed
//! quadratic–quartic loss in d = 3 and d = 10, with Euler–Maruyama and with weak2, at the
//! study's defaults (it refines the substeps, here up to 16) over three learning rates. The
//! study counts the random numbers it draws ([`StudyCost`]); the bound is the time the same
//! generator takes to draw that many standard normals (`PathRng`, ziggurat) on one thread.
//!
//! Criterion groups time each study (one thread). A summary then prints, per case, the best of 3
//! study times at 1 thread (wall and CPU) and 2 threads (wall and CPU), the bound (wall and CPU),
//! the SDE steps and CPU ns per SDE step (everything included), and the ratios study / bound (wall and CPU: the CPU ratio is the one to read on a shared
//! machine), 1 / 2 threads (wall: meaningful only on an idle machine) and the CPU time of the
//! 2-thread run over the 1-thread run (the parallel overhead, readable under load: with two free
//! cores the speed-up would be `2 / that`).
//! A second summary times an uncoupled study of (A) with DSGD (Euler–Maruyama, 8 substeps) with
//! Gaussian and with two-point increments, against the time to draw the Gaussian study's normals
//! (issue 13: do cheaper increments make a weak-order-1 study cheaper than its normals?).
//! `STUDY_BENCH_PATHS` overrides the paths (default 4000); `STUDY_BENCH_SUMMARY_ONLY=1` skips the
//! criterion groups; `STUDY_BENCH_PROFILE=1` runs each selected study once on one thread and
//! stops (for callgrind).

use compare::study::{weak_error_study_with_cost, StudyCost, StudySettings};
use compare::Observable;
use criterion::Criterion;
use models::{
    Agent, BernoulliSparsifier, CompressorKind, Dcsgd, Dsgd, DsignSgd, GaussianNoise, Identity,
    LossKind, Method, MixedQuadraticQuartic, NoiseModel, Optimizer, Schedule, SdeModel,
    StudentTNoise,
};
use rand::RngExt;
use rand_distr::StandardNormal;
use sde_core::{derive_stream, IncrementKind, SchemeKind};
use std::hint::black_box;
use std::time::Instant;

type Opt = Optimizer<LossKind, Method>;

fn agents(noise: &dyn Fn(f64) -> NoiseModel, compressor: CompressorKind) -> Vec<Agent> {
    (0..4)
        .map(|i| Agent {
            noise: noise(0.5 + 0.25 * i as f64),
            compressor,
        })
        .collect()
}

fn optimizer(kind: &str, d: usize) -> Opt {
    let gauss = |s: f64| NoiseModel::Gaussian(GaussianNoise::isotropic(d, s, 0.0).unwrap());
    let student = |s: f64| NoiseModel::StudentT(StudentTNoise::isotropic(d, 3.0, s, 0.0).unwrap());
    let id = CompressorKind::Identity(Identity);
    let method = match kind {
        "dsgd" => Method::Dsgd(Dsgd::new(agents(&gauss, id)).unwrap()),
        "dcsgd_bern" => {
            let bern = CompressorKind::Bernoulli(BernoulliSparsifier::new(0.5).unwrap());
            Method::Dcsgd(Dcsgd::new(agents(&gauss, bern)).unwrap())
        }
        _ => Method::DsignSgd(DsignSgd::new(agents(&student, id)).unwrap()),
    };
    Optimizer::new(
        LossKind::MixedQuadraticQuartic(
            MixedQuadraticQuartic::new(vec![1.0; d], vec![0.5; d]).unwrap(),
        ),
        method,
        Schedule::constant(),
    )
    .unwrap()
}

fn settings(d: usize, scheme: SchemeKind, paths: u64) -> StudySettings {
    StudySettings {
        etas: vec![0.2, 0.1, 0.05],
        horizon: 0.8,
        paths,
        seed: 5,
        x0: (0..d).map(|j| 1.0 - 0.1 * j as f64).collect(),
        models: SdeModel::ALL.to_vec(),
        scheme,
        increments: IncrementKind::Gaussian,
        // At the defaults (the study refines): Euler–Maruyama is refused at fixed substeps for
        // the order-2 model. The cap keeps a case's work bounded.
        substeps: None,
        max_substeps: 16,
        observables: vec![Observable::Loss, Observable::XSq],
        diverge_above: 1e8,
        common_random_numbers: true,
        exact_reference: false,
        target_rel_ci: None,
        max_paths: None,
    }
}

fn study(opt: &Opt, s: &StudySettings) -> StudyCost {
    let (curves, cost) = weak_error_study_with_cost(opt, s, None, &|_| {}).unwrap();
    black_box(curves);
    cost
}

/// Draws `n` standard normals with the study's generator, on the calling thread.
fn draw_normals(n: u64) -> f64 {
    let mut rng = derive_stream(1, 2);
    let mut acc = 0.0;
    for _ in 0..n {
        let z: f64 = rng.sample(StandardNormal);
        acc += z;
    }
    acc
}

/// CPU time of every thread of this process so far (ns): on a machine shared with other jobs
/// the CPU time of a run moves far less than its wall time. `CLOCK_PROCESS_CPUTIME_ID` is exact
/// to the nanosecond, where `/proc`'s schedstat of a running thread advances by scheduler ticks
/// (4 ms: as long as drawing a study's normals).
fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Best of `reps` runs of `f`: (wall seconds, CPU seconds summed over threads).
fn best_of<F: FnMut()>(reps: usize, mut f: F) -> (f64, f64) {
    (0..reps)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu_ns());
            f();
            (
                t.elapsed().as_secs_f64(),
                cpu_ns().saturating_sub(c) as f64 * 1e-9,
            )
        })
        .fold((f64::INFINITY, f64::INFINITY), |a, b| {
            (a.0.min(b.0), a.1.min(b.1))
        })
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn main() {
    let paths = std::env::var("STUDY_BENCH_PATHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000u64);
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut cases = Vec::new();
    for kind in ["dsgd", "dcsgd_bern", "dsignsgd_t3"] {
        for d in [3usize, 10] {
            for (sname, scheme) in [
                ("em", SchemeKind::EulerMaruyama),
                ("weak2", SchemeKind::Weak2),
            ] {
                let name = format!("study/{kind}_d{d}_{sname}");
                if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
                    cases.push((name, optimizer(kind, d), settings(d, scheme, paths)));
                }
            }
        }
    }
    // Issue 13's increments target: an uncoupled weak-order-1 DSGD study with two-point
    // increments (64 per u64 draw) against the same study with Gaussian ones, and against the
    // time to draw the normals the Gaussian study draws.
    let mut increments_cases = Vec::new();
    for d in [3usize, 10] {
        let name = format!("study/dsgd_d{d}_em_uncoupled");
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            let gauss = StudySettings {
                models: vec![SdeModel::FirstOrder],
                common_random_numbers: false,
                // Fixed substeps: both increments then take the same SDE steps.
                substeps: Some(8),
                ..settings(d, SchemeKind::EulerMaruyama, paths)
            };
            let two_point = StudySettings {
                increments: IncrementKind::TwoPoint,
                ..gauss.clone()
            };
            increments_cases.push((name, optimizer("dsgd", d), gauss, two_point));
        }
    }
    let one = pool(1);
    let two = pool(2);
    // One study per case on one thread and nothing else: the run to put under
    // `valgrind --tool=callgrind` (instruction counts are stable on a shared machine).
    if std::env::var_os("STUDY_BENCH_PROFILE").is_some() {
        for (name, opt, s) in &cases {
            let cost = one.install(|| study(opt, s));
            println!(
                "{name}: {} random numbers, {} SDE steps, {} discrete steps",
                cost.random_numbers, cost.sde_steps, cost.discrete_steps
            );
        }
        for (name, opt, gauss, two_point) in &increments_cases {
            for (inc, s) in [("gaussian", gauss), ("two_point", two_point)] {
                let cost = one.install(|| study(opt, s));
                println!(
                    "{name} ({inc}): {} random numbers, {} SDE steps, {} discrete steps",
                    cost.random_numbers, cost.sde_steps, cost.discrete_steps
                );
            }
        }
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .configure_from_args();
    // The criterion groups take minutes per DSignSGD case on a loaded machine; the summary alone
    // (best of 3) is what the README quotes.
    if std::env::var_os("STUDY_BENCH_SUMMARY_ONLY").is_none() {
        for (name, opt, s) in &cases {
            c.bench_function(name, |b| b.iter(|| one.install(|| study(opt, s))));
        }
    }
    println!();
    println!(
        "{:<28} {:>12} {:>11} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "study (paths)",
        "random nums",
        "SDE steps",
        "ns/step",
        "1thr wall",
        "1thr cpu",
        "2thr wall",
        "2thr cpu",
        "bnd wall",
        "bnd cpu",
        "wall r",
        "cpu r",
        "1/2thr",
        "cpu2/1"
    );
    for (name, opt, s) in &cases {
        let cost = one.install(|| study(opt, s));
        let t1 = best_of(3, || {
            one.install(|| study(opt, s));
        });
        let t2 = best_of(3, || {
            two.install(|| study(opt, s));
        });
        let bound = best_of(3, || {
            black_box(draw_normals(cost.random_numbers));
        });
        println!(
            "{:<28} {:>12} {:>11} {:>7.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            format!("{} ({paths})", name.trim_start_matches("study/")),
            cost.random_numbers,
            cost.sde_steps,
            t1.1 * 1e9 / cost.sde_steps.max(1) as f64,
            t1.0,
            t1.1,
            t2.0,
            t2.1,
            bound.0,
            bound.1,
            t1.0 / bound.0,
            t1.1 / bound.1,
            t1.0 / t2.0,
            t2.1 / t1.1
        );
    }
    if !increments_cases.is_empty() {
        println!();
        println!(
            "{:<28} {:>12} {:>11} {:>9} {:>12} {:>11} {:>9} {:>8} {:>9} {:>9}",
            "uncoupled (A), EM (paths)",
            "gauss nums",
            "SDE steps",
            "gauss cpu",
            "2-pt u64s",
            "SDE steps",
            "2-pt cpu",
            "speedup",
            "bnd cpu",
            "2-pt/bnd"
        );
    }
    for (name, opt, gauss, two_point) in &increments_cases {
        let cg = one.install(|| study(opt, gauss));
        let ct = one.install(|| study(opt, two_point));
        let tg = best_of(3, || {
            one.install(|| study(opt, gauss));
        });
        let tt = best_of(3, || {
            one.install(|| study(opt, two_point));
        });
        let bound = best_of(3, || {
            black_box(draw_normals(cg.random_numbers));
        });
        println!(
            "{:<28} {:>12} {:>11} {:>9.3} {:>12} {:>11} {:>9.3} {:>8.2} {:>9.3} {:>9.2}",
            format!("{} ({paths})", name.trim_start_matches("study/")),
            cg.random_numbers,
            cg.sde_steps,
            tg.1,
            ct.random_numbers,
            ct.sde_steps,
            tt.1,
            tg.1 / tt.1,
            bound.1,
            tt.1 / bound.1
        );
    }
    c.final_summary();
}
