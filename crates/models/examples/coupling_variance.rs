//! How much common random numbers shrink the variance of a weak-error estimate.
//!
//! For each optimizer below, a coupled pair (discrete optimizer, SDE model) is run over `T = 1`:
//! every iteration draws `coupling_dim()` standard normals, the discrete step is
//! `Optimizer::step_coupled` on them, and the SDE's Brownian increment over the iteration is
//! `−√η ζ` with `ζ = coupling_zeta(normals)`, split over `m` Euler–Maruyama substeps by a
//! Brownian bridge (`m` iid `N(0, h)` increments shifted by `(W − Σ ΔB)/m`, which gives exactly
//! the bridge's conditional law of the substep increments given their sum `W`). Printed per
//! `η`: the means of the loss on both sides at `T`, the variance reduction factor
//! `VRF = (Var d + Var s) / Var(d − s)` (independent ensembles have `Var(d − s) = Var d + Var s`),
//! and the standard error the difference would have at 2e5 paths, coupled and independent.
//!
//!     cargo run --release -p models --example coupling_variance \
//!         [-- paths [first|second [substeps [case-name-prefix]]]]
//!
//! Single-threaded and deterministic (path `p` uses `derive_stream(seed, p)`).

use models::compress::{BernoulliSparsifier, CompressorKind, Identity, RandK};
use models::loss::{DiagonalQuadratic, Loss, MixedQuadraticQuartic, Quartic};
use models::method::{Agent, Dcsgd, DsignSgd, Method};
use models::noise::{GaussianNoise, NoiseModel, StudentTNoise};
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use models::sde::SdeModel;
use rand_distr::{Distribution, StandardNormal};
use sde_core::{derive_stream, PathRng, Sde};

const HORIZON: f64 = 1.0;
const ETAS: [f64; 2] = [0.1, 0.025];

struct Pair {
    d: Vec<f64>,
    s: Vec<f64>,
}

#[derive(Clone, Copy)]
struct Setup {
    model: SdeModel,
    substeps: usize,
}

fn run<L: Loss>(
    opt: &Optimizer<L, Method>,
    setup: Setup,
    eta: f64,
    x0: &[f64],
    paths: usize,
    seed: u64,
) -> Pair {
    let dim = opt.dim();
    let substeps = setup.substeps;
    let sde = opt.sde(setup.model, eta).expect("valid eta");
    let iterations = (HORIZON / eta).round() as usize;
    let h = eta / substeps as f64;
    let sqrt_h = h.sqrt();
    let mut normals = vec![0.0; opt.coupling_dim()];
    let mut zeta = vec![0.0; dim];
    let mut dw = vec![0.0; substeps * dim];
    let mut drift = vec![0.0; dim];
    let mut noise = vec![0.0; dim];
    let mut b = vec![0.0; sde.noise().diffusion_len(dim)];
    let mut scratch = vec![0.0; sde.scratch_len()];
    let mut ws = opt.workspace();
    let (mut xd, mut xs) = (x0.to_vec(), x0.to_vec());
    let mut out = Pair {
        d: Vec::with_capacity(paths),
        s: Vec::with_capacity(paths),
    };
    for p in 0..paths {
        let mut rng: PathRng = derive_stream(seed, p as u64);
        xd.copy_from_slice(x0);
        xs.copy_from_slice(x0);
        for k in 0..iterations {
            for v in normals.iter_mut() {
                *v = StandardNormal.sample(&mut rng);
            }
            opt.coupling_zeta(&normals, &mut zeta);
            // Brownian bridge: substep increments with total W = −√η ζ.
            for v in dw.iter_mut() {
                let n: f64 = StandardNormal.sample(&mut rng);
                *v = sqrt_h * n;
            }
            for j in 0..dim {
                let total: f64 = (0..substeps).map(|i| dw[i * dim + j]).sum();
                let shift = (-eta.sqrt() * zeta[j] - total) / substeps as f64;
                for i in 0..substeps {
                    dw[i * dim + j] += shift;
                }
            }
            for i in 0..substeps {
                let t = (k * substeps + i) as f64 * h;
                let inc = &dw[i * dim..(i + 1) * dim];
                sde.drift(t, &xs, &mut drift, &mut scratch);
                sde.diffusion_mul(t, &xs, inc, &mut noise, &mut b, &mut scratch);
                for j in 0..dim {
                    xs[j] += drift[j] * h + noise[j];
                }
            }
            assert!(opt.step_coupled(k as u64, eta, &mut xd, &normals, &mut rng, &mut ws));
        }
        out.d.push(opt.loss().value(&xd));
        out.s.push(opt.loss().value(&xs));
    }
    out
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0),
    )
}

fn report<L: Loss>(
    label: &str,
    opt: &Optimizer<L, Method>,
    setup: Setup,
    x0: &[f64],
    paths: usize,
) {
    for (i, &eta) in ETAS.iter().enumerate() {
        let pair = run(opt, setup, eta, x0, paths, 1000 + i as u64);
        let (md, vd) = mean_var(&pair.d);
        let (ms, vs) = mean_var(&pair.s);
        let diff: Vec<f64> = pair.d.iter().zip(&pair.s).map(|(a, b)| a - b).collect();
        let (mdiff, vdiff) = mean_var(&diff);
        let se = |v: f64| (v / 2e5).sqrt();
        println!(
            "{label:<32} eta={eta:<6} E f(x_K)={md:.5} E f(X_T)={ms:.5} diff={mdiff:+.2e}±{:.1e}  \
             VRF={:7.2}  SE@2e5: coupled {:.2e}, independent {:.2e}",
            (vdiff / paths as f64).sqrt(),
            (vd + vs) / vdiff,
            se(vdiff),
            se(vd + vs),
        );
    }
}

fn gaussian(d: usize, sigma0: f64, sigma1: f64) -> NoiseModel {
    GaussianNoise::isotropic(d, sigma0, sigma1).unwrap().into()
}

fn student(d: usize, nu: f64) -> NoiseModel {
    StudentTNoise::isotropic(d, nu, 1.0, 0.0).unwrap().into()
}

fn agents(noise: NoiseModel, compressor: impl Into<CompressorKind>, n: usize) -> Vec<Agent> {
    vec![
        Agent {
            noise,
            compressor: compressor.into(),
        };
        n
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let paths: usize = match args.get(1) {
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("paths must be a positive integer, got {a:?}");
            std::process::exit(2)
        }),
        None => 20_000,
    };
    let model = match args.get(2).map(String::as_str) {
        None | Some("first") => SdeModel::FirstOrder,
        Some("second") => SdeModel::SecondOrder,
        Some(other) => {
            eprintln!("model must be `first` or `second`, got {other:?}");
            std::process::exit(2)
        }
    };
    let substeps: usize = match args.get(3) {
        Some(a) => match a.parse() {
            Ok(m) if m >= 1 => m,
            _ => {
                eprintln!("substeps must be an integer >= 1, got {a:?}");
                std::process::exit(2)
            }
        },
        None => 16,
    };
    let filter = args.get(4).cloned().unwrap_or_default();
    let setup = Setup { model, substeps };
    println!(
        "{paths} paths, model {}, Euler–Maruyama with {substeps} substeps, T = {HORIZON}, g = loss",
        model.name()
    );
    // dcsgd-bernoulli.toml's problem: mixed quadratic + quartic, N = 8, affine Gaussian noise.
    let mixed = || MixedQuadraticQuartic::new(vec![1.0, 0.5], vec![0.5, 1.0]).unwrap();
    let x0 = [1.0, -1.0];
    let bernoulli = || {
        Dcsgd::new(agents(
            gaussian(2, 0.5, 0.2),
            BernoulliSparsifier::new(0.5).unwrap(),
            8,
        ))
        .unwrap()
    };
    let cases: Vec<(&str, Method)> = vec![
        ("dcsgd bernoulli p=0.5", Method::Dcsgd(bernoulli())),
        (
            "dcsgd bernoulli p=0.5 per-agent",
            Method::Dcsgd(bernoulli().with_per_agent_coupling()),
        ),
        (
            "dcsgd rand-1 (d=2) mixed",
            Method::Dcsgd(
                Dcsgd::new(agents(gaussian(2, 0.5, 0.2), RandK::new(1, 2).unwrap(), 8)).unwrap(),
            ),
        ),
    ];
    for (label, method) in cases {
        if !label.starts_with(filter.as_str()) {
            continue;
        }
        let opt = Optimizer::new(mixed(), method, Schedule::constant()).unwrap();
        report(label, &opt, setup, &x0, paths);
    }
    // rand-k on a diagonal quadratic (dcsgd-randk.toml's problem for d = 3), N = 8, σ0 = 0.5:
    // the aggregate coupling (pick-count filter) against the per-agent one.
    for (d, k) in [(3usize, 1usize), (3, 2), (10, 1), (10, 2)] {
        let lambda: Vec<f64> = (0..d)
            .map(|j| 0.5 + 1.5 * j as f64 / (d - 1) as f64)
            .collect();
        let x0: Vec<f64> = (0..d)
            .map(|j| if j % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let method =
            || Dcsgd::new(agents(gaussian(d, 0.5, 0.0), RandK::new(k, d).unwrap(), 8)).unwrap();
        for (label, method) in [
            (format!("dcsgd rand-{k} (d={d})"), method()),
            (
                format!("dcsgd rand-{k} (d={d}) per-agent"),
                method().with_per_agent_coupling(),
            ),
        ] {
            if !label.starts_with(filter.as_str()) {
                continue;
            }
            let loss = DiagonalQuadratic::new(lambda.clone()).unwrap();
            let opt = Optimizer::new(loss, Method::Dcsgd(method), Schedule::constant()).unwrap();
            report(&label, &opt, setup, &x0, paths);
        }
    }
    // dsignsgd-student-t.toml's problem: quartic, N = 8, unit-scale Student-t noise.
    let x0 = [1.0, -0.5];
    for nu in [3.0, 1.5] {
        let label = format!("dsignsgd student-t nu={nu}");
        if !label.starts_with(filter.as_str()) {
            continue;
        }
        let method = Method::DsignSgd(DsignSgd::new(agents(student(2, nu), Identity, 8)).unwrap());
        let opt = Optimizer::new(
            Quartic::new(vec![1.0, 1.0]).unwrap(),
            method,
            Schedule::constant(),
        )
        .unwrap();
        report(&label, &opt, setup, &x0, paths);
    }
}
