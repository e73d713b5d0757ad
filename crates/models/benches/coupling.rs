//! Cost of one coupled draw (`coupling_dim()` normals, `coupling_zeta`, `sample_coupled`)
//! against the uncoupled `sample`, `N = 8` agents, `d = 2` (the size of the shipped weak-error
//! studies), at a gradient where signs and masks are genuinely random.
//!
//!     cargo bench -p models --bench coupling -- --warm-up-time 1 --measurement-time 3

use criterion::{criterion_group, criterion_main, Criterion};
use models::compress::{BernoulliSparsifier, CompressorKind, Identity, RandK};
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, GradientMethod, Method};
use models::noise::{GaussianNoise, NoiseModel, StudentTNoise};
use rand_distr::{Distribution, StandardNormal};
use sde_core::{derive_stream, PathRng};
use std::hint::black_box;

const N: usize = 8;
const D: usize = 2;
const G: [f64; D] = [0.6, -0.3];

fn agents(noise: NoiseModel, compressor: impl Into<CompressorKind>) -> Vec<Agent> {
    vec![
        Agent {
            noise,
            compressor: compressor.into(),
        };
        N
    ]
}

fn gaussian() -> NoiseModel {
    GaussianNoise::isotropic(D, 0.5, 0.2).unwrap().into()
}

fn student(nu: f64) -> NoiseModel {
    StudentTNoise::isotropic(D, nu, 1.0, 0.0).unwrap().into()
}

fn bench(c: &mut Criterion) {
    let bern = || BernoulliSparsifier::new(0.5).unwrap();
    let cases: Vec<(&str, Method)> = vec![
        (
            "dsgd_gaussian",
            Method::Dsgd(Dsgd::new(agents(gaussian(), Identity)).unwrap()),
        ),
        (
            "dcsgd_bernoulli_aggregate",
            Method::Dcsgd(Dcsgd::new(agents(gaussian(), bern())).unwrap()),
        ),
        (
            "dcsgd_bernoulli_per_agent",
            Method::Dcsgd(
                Dcsgd::new(agents(gaussian(), bern()))
                    .unwrap()
                    .with_per_agent_coupling(),
            ),
        ),
        (
            "dcsgd_rand_1",
            Method::Dcsgd(Dcsgd::new(agents(gaussian(), RandK::new(1, D).unwrap())).unwrap()),
        ),
        (
            "dsignsgd_t3",
            Method::DsignSgd(DsignSgd::new(agents(student(3.0), Identity)).unwrap()),
        ),
        (
            "dsignsgd_t1.5",
            Method::DsignSgd(DsignSgd::new(agents(student(1.5), Identity)).unwrap()),
        ),
    ];
    for (name, m) in &cases {
        let mut group = c.benchmark_group(*name);
        let mut scratch = vec![0.0; m.scratch_len()];
        let mut u = vec![0.0; D];
        let mut rng: PathRng = derive_stream(1, 0);
        group.bench_function("sample", |b| {
            b.iter(|| {
                m.sample(&G, &mut rng, &mut u, &mut scratch);
                black_box(u[0])
            })
        });
        let mut normals = vec![0.0; m.coupling_dim()];
        let mut zeta = vec![0.0; D];
        group.bench_function("coupled", |b| {
            b.iter(|| {
                for v in normals.iter_mut() {
                    *v = StandardNormal.sample(&mut rng);
                }
                m.coupling_zeta(&normals, &mut zeta);
                m.sample_coupled(&G, &normals, &mut rng, &mut u, &mut scratch);
                black_box(u[0] + zeta[0])
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
