//! Minibatch noise on a real network (issue 9 speed targets), MLP 11-32-1 (tanh, squared loss)
//! on wine_quality (1279 training rows), N = 8 agents, B = 16:
//!
//! * `dsgd_iteration`: one `Optimizer::step` (N·B = 128 rows forward and backward) against its
//!   FLOP bound: `2 · N·B · pass_multiply_adds` flops at the rate this machine reaches on a
//!   256×256 `ndarray` matrix product (measured here, so the bound is this machine's). Target ≤ 2×.
//! * `sde_step`: one Euler–Maruyama step of (A) with the `d × n` minibatch factor (drift: one
//!   full gradient; diffusion: one weighted backward pass over the n rows) against one full-batch
//!   gradient. Target ≤ 3×.
//!
//! * the 128-row weighted gradient alone, through the small-batch path of
//!   `Mlp::weighted_gradient` and through the general (ndarray) path, timed together.
//!
//! After the criterion groups a summary prints both ratios (best of 40 short timed loops: on a
//! shared machine a short loop often runs without being preempted, so the minimum is the
//! machine's own time).
//!
//! Every timed call starts from the other of two states: the network reuses the forward pass of
//! the last state it saw, and a loop at one fixed state would time only the backward passes.
//!
//! Profile mode, for instruction counts that a shared machine does not disturb:
//! `MINIBATCH_PROFILE=<net>:<iteration|em>:<count>` runs only `count` DSGD iterations (N = 8,
//! B = 16) or Euler–Maruyama steps of (A) on `tanh-32` (11-32-1), `softplus-32` or `tanh-8-8`
//! (11-8-8-1), in `profile_loop`:
//! `valgrind --tool=callgrind --toggle-collect='*profile_loop*' target/release/deps/minibatch-…`;
//! the difference of the counts at `2c` and `c` calls, over `c`, is the cost of one call.

use criterion::Criterion;
use models::data::DatasetName;
use models::loss::Loss;
use models::minibatch::{Minibatch, MinibatchRule};
use models::mlp::{Activation, Mlp, MlpSpec};
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use models::sde::SdeModel;
use ndarray::Array2;
use sde_core::{derive_stream, EulerMaruyama, Scheme, Sde, Step};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

fn net() -> Arc<Mlp> {
    net_with(vec![32], Activation::Tanh)
}

fn net_with(hidden: Vec<usize>, activation: Activation) -> Arc<Mlp> {
    Arc::new(
        Mlp::new(MlpSpec {
            dataset: DatasetName::WineQuality,
            hidden,
            activation,
            objective: None,
            l2: 0.0,
            test_fraction: 0.2,
            seed: 1,
        })
        .expect("the bench network"),
    )
}

fn best(reps: usize, f: &mut dyn FnMut() -> f64) -> f64 {
    (0..40)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                black_box(f());
            }
            t.elapsed().as_nanos() as f64 / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Flops per ns of a 256×256×256 product (`2·256³` flops).
fn matmul_rate() -> f64 {
    let a = Array2::<f64>::from_shape_fn((256, 256), |(i, j)| ((i * 7 + j) % 13) as f64 * 0.1);
    let b = a.t().to_owned();
    let mut c = Array2::<f64>::zeros((256, 256));
    let ns = best(5, &mut || {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        c[[0, 0]]
    });
    2.0 * 256f64.powi(3) / ns
}

/// The networks of the profile mode: `(name, hidden, activation)`.
const PROFILE_NETS: [(&str, &[usize], Activation); 3] = [
    ("tanh-32", &[32], Activation::Tanh),
    ("softplus-32", &[32], Activation::Softplus),
    ("tanh-8-8", &[8, 8], Activation::Tanh),
];

/// `iters` DSGD iterations (N = 8, B = 16) and `iters / 8` Euler–Maruyama steps of (A) with the
/// minibatch factor, alternating between two states. Not inlined, so that callgrind can count
/// this function alone (`--toggle-collect='*profile_loop*'`): the instruction count divided by
/// `iters` is the iteration's cost, stable where wall time on a shared machine is not.
#[inline(never)]
fn profile_loop(net: &Arc<Mlp>, what: &str, iters: usize) -> f64 {
    let mb = Minibatch::new(net.clone(), MinibatchRule::Sgd, 8, 16, true).expect("method");
    let opt = Optimizer::new(net.clone(), mb, Schedule::constant()).expect("optimizer");
    let x0 = net.x0().to_vec();
    let x1: Vec<f64> = x0.iter().map(|v| 0.99 * v + 1e-3).collect();
    let starts = [x0.clone(), x1];
    let mut x = x0.clone();
    let mut acc = 0.0;
    if what == "iteration" {
        let mut ws = opt.workspace();
        let mut rng = derive_stream(1, 0);
        for k in 0..iters {
            x.copy_from_slice(&starts[k & 1]);
            opt.step(0, 0.01, &mut x, &mut rng, &mut ws);
            acc += x[0];
        }
    } else {
        let sde = opt.sde(SdeModel::FirstOrder, 0.01).expect("sde");
        let m = sde.noise().noise_dim(sde.dim());
        let dw: Vec<f64> = (0..m).map(|j| 0.1 * (1.0 + j as f64).sin()).collect();
        let mut ws = EulerMaruyama.workspace(&sde);
        let mut rng = derive_stream(3, 0);
        for k in 0..iters {
            x.copy_from_slice(&starts[k & 1]);
            EulerMaruyama.step(&sde, &mut x, Step::new(0.0, 0.01, &dw, &mut rng), &mut ws);
            acc += x[0];
        }
    }
    acc
}

fn main() {
    // Profile mode: `MINIBATCH_PROFILE=<net>:<iteration|em>:<count>` runs only `profile_loop`
    // (for callgrind; see there).
    if let Ok(spec) = std::env::var("MINIBATCH_PROFILE") {
        let parts: Vec<&str> = spec.split(':').collect();
        let (name, what, iters) = match parts.as_slice() {
            [n, w, c] => (*n, *w, c.parse::<usize>().expect("MINIBATCH_PROFILE count")),
            _ => panic!("MINIBATCH_PROFILE=<net>:<iteration|em>:<count>, got {spec}"),
        };
        let (_, hidden, act) = PROFILE_NETS
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| {
                panic!("MINIBATCH_PROFILE net: one of tanh-32, softplus-32, tanh-8-8")
            });
        let net = net_with(hidden.to_vec(), *act);
        // One untimed call first, so the counted loop holds no first-call allocations.
        black_box(profile_loop(&net, what, 2));
        println!("{}", black_box(profile_loop(&net, what, iters)));
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let net = net();
    let (agents, batch) = (8, 16);
    let mb = Minibatch::new(net.clone(), MinibatchRule::Sgd, agents, batch, true).expect("method");
    let opt = Optimizer::new(net.clone(), mb, Schedule::constant()).expect("optimizer");
    let x0 = net.x0().to_vec();
    // The second state: x0 moved a little.
    let x1: Vec<f64> = x0.iter().map(|v| 0.99 * v + 1e-3).collect();
    let starts = [x0.clone(), x1];

    let mut iteration = {
        let mut x = x0.clone();
        let mut ws = opt.workspace();
        let mut rng = derive_stream(1, 0);
        let starts = starts.clone();
        let mut k = 0;
        let opt = &opt;
        move || {
            k ^= 1;
            x.copy_from_slice(&starts[k]);
            opt.step(0, 0.01, &mut x, &mut rng, &mut ws);
            x[0]
        }
    };
    let sde = opt.sde(SdeModel::FirstOrder, 0.01).expect("sde");
    let m = sde.noise().noise_dim(sde.dim());
    let mut em_step = {
        let dw: Vec<f64> = (0..m).map(|j| 0.1 * (1.0 + j as f64).sin()).collect();
        let mut ws = EulerMaruyama.workspace(&sde);
        let mut rng = derive_stream(3, 0);
        let mut x = x0.clone();
        let starts = starts.clone();
        let mut k = 0;
        let sde = &sde;
        move || {
            k ^= 1;
            x.copy_from_slice(&starts[k]);
            EulerMaruyama.step(sde, &mut x, Step::new(0.0, 0.01, &dw, &mut rng), &mut ws);
            x[0]
        }
    };
    let mut full_gradient = {
        let mut g = vec![0.0; net.dim()];
        let starts = starts.clone();
        let mut k = 0;
        let net = net.clone();
        move || {
            k ^= 1;
            net.gradient(&starts[k], &mut g);
            g[0]
        }
    };
    {
        let mut group = c.benchmark_group("minibatch_mlp_11_32_1");
        group.bench_function("dsgd_iteration_n8_b16", |b| {
            b.iter(|| black_box(iteration()))
        });
        group.bench_function("sde_step_em_first_order", |b| {
            b.iter(|| black_box(em_step()))
        });
        group.bench_function("full_batch_gradient", |b| {
            b.iter(|| black_box(full_gradient()))
        });
        group.finish();
    }
    // The 128-row weighted gradient alone, through the small-batch path (what the iteration
    // runs) and through the general ndarray path, at the same moment of the machine's load.
    let batch_rows: Vec<usize> = (0..agents * batch)
        .map(|i| (i * 37) % net.train_rows())
        .collect();
    let batch_w = vec![1.0 / batch as f64; agents * batch];
    let batch_gradient = |general: bool| {
        let mut g = vec![0.0; net.dim()];
        let starts = starts.clone();
        let (net, rows, w) = (net.clone(), batch_rows.clone(), batch_w.clone());
        let mut k = 0;
        move || {
            k ^= 1;
            if general {
                net.weighted_gradient_general(&starts[k], &rows, &w, &mut g);
            } else {
                net.weighted_gradient(&starts[k], &rows, &w, &mut g);
            }
            g[0]
        }
    };
    let (mut small_path, mut general_path) = (batch_gradient(false), batch_gradient(true));
    let rate = matmul_rate();
    let flops = 2.0 * (agents * batch) as f64 * net.pass_multiply_adds() as f64;
    let bound = flops / rate;
    let t_iter = best(20, &mut iteration);
    let t_em = best(4, &mut em_step);
    let t_grad = best(4, &mut full_gradient);
    let t_small = best(20, &mut small_path);
    let t_general = best(20, &mut general_path);
    println!();
    println!(
        "matmul rate: {rate:.2} flop/ns; DSGD iteration flops {flops:.0}, bound {bound:.0} ns"
    );
    println!(
        "dsgd iteration (N = 8, B = 16): {t_iter:.0} ns = {:.2}× the FLOP bound (target ≤ 2)",
        t_iter / bound
    );
    println!(
        "128-row gradient: small-batch path {t_small:.0} ns, general path {t_general:.0} ns ({:.2}× faster)",
        t_general / t_small
    );
    println!(
        "EM step of (A) with the minibatch factor: {t_em:.0} ns = {:.2}× one full-batch gradient ({t_grad:.0} ns; target ≤ 3)",
        t_em / t_grad
    );
    c.final_summary();
}
