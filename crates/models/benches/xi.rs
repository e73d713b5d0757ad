//! Cost per coordinate of the Student-t sign drift `Ξ_ν`, exact routes against the per-ν table,
//! and the cost of one DSignSGD SDE step (Platen weak2 and Euler–Maruyama) with `ν = 2.5` (table)
//! against `ν = 3` (exact finite sums).
//!
//! Arguments are 1024 values `y` spread over `[-6, 6]` (where DSignSGD's `g/s` lives) with a few
//! in the far tails, so both regions of the table are timed. Target (issue 13): table ≥ 10×
//! faster than `xi(2.5, ·)`; SDE step at `ν = 2.5` ≤ 2× the step at `ν = 3`.

use criterion::{BenchmarkId, Criterion};
use models::compress::Identity;
use models::loss::MixedQuadraticQuartic;
use models::method::{Agent, DsignSgd};
use models::noise::StudentTNoise;
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use models::sde::SdeModel;
use models::special::{xi, XiTable};
use sde_core::{derive_stream, EulerMaruyama, Gaussian, PlatenWeak2, Scheme, Sde, Step};
use std::hint::black_box;

fn ys() -> Vec<f64> {
    (0..1024)
        .map(|i| {
            let u = (i as f64 + 0.5) / 1024.0;
            if i % 64 == 0 {
                (40.0 + 10.0 * u) * if i % 128 == 0 { 1.0 } else { -1.0 }
            } else {
                12.0 * u - 6.0
            }
        })
        .collect()
}

fn run(c: &mut Criterion) {
    let ys = ys();
    let mut group = c.benchmark_group("xi_per_coordinate");
    for nu in [2.5, 3.0, 30.5] {
        group.bench_function(BenchmarkId::new("exact", nu), |b| {
            b.iter(|| ys.iter().map(|&y| xi(nu, black_box(y))).sum::<f64>())
        });
        let table = XiTable::new(nu).unwrap();
        group.bench_function(BenchmarkId::new("table", nu), |b| {
            b.iter(|| ys.iter().map(|&y| table.xi(black_box(y))).sum::<f64>())
        });
    }
    group.bench_function("table_new/2.5", |b| {
        b.iter(|| XiTable::new(black_box(2.5)).unwrap())
    });
    group.finish();

    // One SDE step of the DSignSGD model (B): d = 10, N = 4 heterogeneous Student-t agents.
    let d = 10;
    let mut group = c.benchmark_group("dsignsgd_sde_step_d10");
    for nu in [2.5, 3.0] {
        let agents: Vec<Agent> = (0..4)
            .map(|i| Agent {
                noise: StudentTNoise::isotropic(d, nu, 0.5 + 0.25 * i as f64, 0.0)
                    .unwrap()
                    .into(),
                compressor: Identity.into(),
            })
            .collect();
        let opt = Optimizer::new(
            MixedQuadraticQuartic::new(vec![1.0; d], vec![0.5; d]).unwrap(),
            DsignSgd::new(agents).unwrap(),
            Schedule::constant(),
        )
        .unwrap();
        let sde = opt.sde(SdeModel::SecondOrder, 0.05).unwrap();
        let x0: Vec<f64> = (0..d).map(|j| 0.2 + 0.15 * j as f64).collect();
        let dw: Vec<f64> = (0..d).map(|j| 0.1 * ((j as f64).sin())).collect();
        fn bench_scheme<S: Sde, K: Scheme>(
            group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
            name: &str,
            nu: f64,
            sde: &S,
            scheme: K,
            x0: &[f64],
            dw: &[f64],
        ) {
            let mut ws = scheme.workspace(sde);
            let mut rng = derive_stream(3, 0);
            let mut x = x0.to_vec();
            group.bench_function(BenchmarkId::new(name, nu), |b| {
                b.iter(|| {
                    x.copy_from_slice(x0);
                    scheme.step(sde, &mut x, Step::new(0.0, 0.01, dw, &mut rng), &mut ws);
                    black_box(x[0])
                })
            });
        }
        let _ = Gaussian;
        bench_scheme(
            &mut group,
            "euler_maruyama",
            nu,
            &sde,
            EulerMaruyama,
            &x0,
            &dw,
        );
        bench_scheme(&mut group, "weak2", nu, &sde, PlatenWeak2, &x0, &dw);
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    run(&mut c);
    c.final_summary();
}
