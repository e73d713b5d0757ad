//! Ensembles: bit-for-bit reproducibility across thread counts, divergence bookkeeping, quantiles
//! from `run_collect`, and streaming moments against closed forms.

use sde_core::ensemble::CHUNK;
use sde_core::problems::{matrix, LinearSde, Matrix, MatrixExt, OrnsteinUhlenbeck};
use sde_core::testing::assert_same_bits;
use sde_core::*;
use statrs::distribution::{ContinuousCDF, Normal};

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// `dX = X² dt + dW`, `X_0 = 1`: the drift alone blows up at `t = 1`, so over `T = 1.5` a good
/// part of the paths explode (to ±∞, then NaN) and the rest stay bounded.
fn explosive() -> impl Sde {
    SdeFn::new(
        1,
        NoiseShape::Scalar,
        |_t, x: &[f64], a: &mut [f64]| a[0] = x[0] * x[0],
        |_t, _x: &[f64], b: &mut [f64]| b[0] = 1.0,
    )
    .unwrap()
}

#[test]
fn same_bits_for_one_two_and_three_threads() {
    // A path count that is not a multiple of the chunk, one smaller than a chunk, and the
    // smallest allowed.
    assert_ne!(1000 % CHUNK, 0);
    let nc = LinearSde::noncommutative_2d();
    // Platen's scheme draws auxiliary bits from the path's stream after each increment.
    let solver = Solver::new(&nc, PlatenWeak2, ThreePoint).unwrap();
    let grid = Grid::new(0.0, 1.0, 40).unwrap().save_every(10).unwrap();
    let sim = SdePaths::new(solver, grid, &[1.0, 0.5])
        .unwrap()
        .observe_with(3, |_t, x: &[f64], o: &mut [f64]| {
            o[0] = x[0];
            o[1] = x[1];
            o[2] = x[0] * x[1];
        });
    let ex = explosive();
    let esolver = Solver::new(&ex, EulerMaruyama, Gaussian).unwrap();
    let egrid = Grid::new(0.0, 1.5, 150).unwrap().save_every(15).unwrap();
    let esim = SdePaths::new(esolver, egrid, &[1.0]).unwrap();
    for paths in [1000u64, 37, 2] {
        let ens = Ensemble::new(paths, 2024).unwrap();
        let one = pool(1).install(|| ens.run(&sim));
        let two = pool(2).install(|| ens.run(&sim));
        let three = pool(3).install(|| ens.run(&sim));
        assert_eq!(one.paths, paths);
        assert_eq!(one.get(4, 0).count, paths);
        assert_same_bits(&one, &two);
        assert_same_bits(&one, &three);
        // run_collect: the same statistics and the same per-path values.
        let (s1, v1) = pool(1).install(|| ens.run_collect(&sim, &|_| {}));
        let (s2, v2) = pool(2).install(|| ens.run_collect(&sim, &|_| {}));
        assert_same_bits(&one, &s1);
        assert_same_bits(&one, &s2);
        assert_eq!(v1.valid, v2.valid);
        assert_eq!(v1.values.len(), paths as usize * 5 * 3);
        assert!(v1
            .values
            .iter()
            .zip(&v2.values)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // With diverging paths, the counts and the statistics of the survivors too.
        let ens = Ensemble::new(paths.max(300), 99).unwrap();
        let e1 = pool(1).install(|| ens.run(&esim));
        let e2 = pool(2).install(|| ens.run(&esim));
        assert_same_bits(&e1, &e2);
    }
}

#[test]
fn diverged_paths_are_counted_and_kept_out_of_the_statistics() {
    let ex = explosive();
    let solver = Solver::new(&ex, EulerMaruyama, Gaussian).unwrap();
    let grid = Grid::new(0.0, 1.5, 150).unwrap().save_every(15).unwrap();
    let x0 = [1.0];
    let paths = 3_000u64;
    let seed = 5;
    let ens = Ensemble::new(paths, seed).unwrap();
    let sim = SdePaths::new(solver.clone(), grid, &x0).unwrap();
    let stats = ens.run(&sim);
    let total = stats.diverged_total();
    println!(
        "explosive: {total} of {paths} paths diverged; per save point {:?}",
        stats.diverged
    );
    assert!(total > paths / 10 && total < paths - paths / 10, "{total}");
    assert_eq!(stats.diverged[0], 0);
    for s in 0..stats.n_save {
        let w = stats.get(s, 0);
        assert_eq!(w.count + stats.diverged[s], paths, "save point {s}");
        // Survivors may be huge but finite just before they overflow (x ↦ x + x² h squares
        // them), so only NaN is excluded here; the threshold below bounds them.
        assert!(!w.mean.is_nan(), "save point {s}: {w:?}");
        if s > 0 {
            assert!(stats.diverged[s] >= stats.diverged[s - 1]);
        }
    }
    // The same bookkeeping by hand: each path from its own stream, a path stopping at the first
    // non-finite state; the survivors' mean at every save point.
    let mut ws = solver.workspace();
    let mut sums = vec![0.0; grid.n_save()];
    let mut counts = vec![0u64; grid.n_save()];
    let mut diverged = vec![0u64; grid.n_save()];
    for p in 0..paths {
        let mut rng = derive_stream(seed, p);
        let mut x = x0;
        let valid = solver.solve(&mut x, &grid, &mut rng, &mut ws, |s, _t, x| {
            if !x[0].is_finite() {
                return false;
            }
            sums[s] += x[0];
            counts[s] += 1;
            true
        });
        for d in &mut diverged[valid..] {
            *d += 1;
        }
    }
    assert_eq!(diverged, stats.diverged);
    for s in 0..grid.n_save() {
        assert_eq!(counts[s], stats.get(s, 0).count);
        let mean = sums[s] / counts[s] as f64;
        let got = stats.mean(s, 0);
        assert!(
            (got - mean).abs() <= 1e-12 * mean.abs().max(1.0),
            "{s}: {got} vs {mean}"
        );
    }
    // A threshold: paths beyond |x| > 10 count as diverged, and no kept value exceeds it.
    let sim10 = SdePaths::new(solver, grid, &x0)
        .unwrap()
        .diverge_above(10.0)
        .unwrap();
    let (st10, values) = ens.run_collect(&sim10, &|_| {});
    assert!(st10.diverged_total() >= total);
    for (p, &v) in values.valid.iter().enumerate() {
        for s in 0..v as usize {
            assert!(values.values[p * grid.n_save() + s].abs() <= 10.0);
        }
    }
    for s in 0..st10.n_save {
        let w = st10.get(s, 0);
        assert_eq!(w.count + st10.diverged[s], paths);
        assert!(w.mean.is_finite() && w.m2.is_finite() && w.mean.abs() <= 10.0);
    }
    // Quantiles count a diverged path as +∞: above the surviving fraction they are infinite,
    // below it finite.
    let last = st10.n_save - 1;
    let alive = 1.0 - st10.diverged[last] as f64 / paths as f64;
    assert_eq!(
        values.quantile(last, 0, alive + 0.5 * (1.0 - alive)),
        f64::INFINITY
    );
    assert!(values.quantile(last, 0, 0.5 * alive).is_finite());
}

/// Euler–Maruyama on `dX = −θ X dt + σ dW` is a Gaussian AR(1) chain: after `n` steps
/// `X_n ~ N((1 − θh)^n x0, σ² h Σ_{k<n} (1 − θh)^{2k})`, exactly.
fn ou_chain_law(theta: f64, sigma: f64, h: f64, n: usize, x0: f64) -> (f64, f64) {
    let r = 1.0 - theta * h;
    let var = sigma * sigma * h * (0..n).map(|k| r.powi(2 * k as i32)).sum::<f64>();
    (r.powi(n as i32) * x0, var)
}

#[test]
fn run_collect_quantiles_match_the_exact_law() {
    let (theta, sigma, x0) = (1.5, 0.8, 2.0);
    let ou = OrnsteinUhlenbeck::new(matrix(&[[theta]]), vec![0.0], matrix(&[[sigma]])).unwrap();
    let grid = Grid::new(0.0, 2.0, 40).unwrap().save_every(10).unwrap();
    let solver = Solver::new(&ou, EulerMaruyama, Gaussian).unwrap();
    let sim = SdePaths::new(solver, grid, &[x0]).unwrap();
    let n = 20_000u64;
    let (stats, values) = Ensemble::new(n, 17).unwrap().run_collect(&sim, &|_| {});
    assert_eq!(stats.diverged_total(), 0);
    // The empirical q-quantile x̂ satisfies F(x̂) ≈ q with binomial standard deviation
    // sqrt(q(1 − q)/N); the margin is 4 of those.
    for s in 1..grid.n_save() {
        let (m, v) = ou_chain_law(theta, sigma, grid.h, s * grid.save_every, x0);
        let law = Normal::new(m, v.sqrt()).unwrap();
        for q in [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99] {
            let xq = values.quantile(s, 0, q);
            let margin = 4.0 * (q * (1.0 - q) / n as f64).sqrt();
            let fq = law.cdf(xq);
            assert!(
                (fq - q).abs() < margin,
                "save point {s}, q = {q}: F(x̂) = {fq}, margin {margin}"
            );
        }
        println!(
            "quantiles at t = {}: median {:.4} (exact {:.4}), 99% {:.4} (exact {:.4})",
            grid.time(s * grid.save_every),
            values.quantile(s, 0, 0.5),
            law.inverse_cdf(0.5),
            values.quantile(s, 0, 0.99),
            law.inverse_cdf(0.99)
        );
    }
}

#[test]
fn streaming_mean_and_variance_match_closed_forms() {
    // Two-dimensional OU with a non-symmetric drift and a full noise matrix, under
    // Euler–Maruyama: the chain is Gaussian with mean μ_{n+1} = (I − Θh) μ_n and covariance
    // C_{n+1} = (I − Θh) C_n (I − Θh)ᵀ + h ΣΣᵀ. The standard error of a mean is sqrt(C_ii/N); that
    // of a sample variance of Gaussian data is C_ii sqrt(2/(N − 1)). Margins: 4 standard errors.
    let ou = OrnsteinUhlenbeck::new(
        matrix(&[[2.0, 1.0], [-0.5, 1.0]]),
        vec![0.0, 0.0],
        matrix(&[[0.8, 0.3], [-0.2, 0.6]]),
    )
    .unwrap();
    let x0 = [2.0, -1.0];
    let grid = Grid::new(0.0, 1.0, 50).unwrap().save_every(10).unwrap();
    let solver = Solver::new(&ou, EulerMaruyama, Gaussian).unwrap();
    let sim = SdePaths::new(solver, grid, &x0).unwrap();
    let n = 100_000u64;
    let stats = Ensemble::new(n, 23).unwrap().run(&sim);
    let step = &Matrix::identity(2, 2) - &(ou.theta() * grid.h);
    let q = &ou.noise_covariance() * grid.h;
    let mut mean = x0.to_vec();
    let mut cov = Matrix::zeros(2, 2);
    for i in 1..=grid.steps {
        mean = step.mul_vec(&mean);
        cov = &(&(&step * &cov) * &step.transpose()) + &q;
        if i % grid.save_every != 0 {
            continue;
        }
        let s = i / grid.save_every;
        for c in 0..2 {
            let w = stats.summary(s, c);
            let var = cov[(c, c)];
            let se_mean = (var / n as f64).sqrt();
            let se_var = var * (2.0 / (n - 1) as f64).sqrt();
            assert!(
                (w.mean - mean[c]).abs() < 4.0 * se_mean,
                "t = {}, x{c}: mean {} vs {}",
                grid.time(i),
                w.mean,
                mean[c]
            );
            assert!(
                (w.variance - var).abs() < 4.0 * se_var,
                "t = {}, x{c}: variance {} vs {var}",
                grid.time(i),
                w.variance
            );
            assert!((w.std_err - se_mean).abs() < 0.05 * se_mean);
        }
    }
    // The exact OU law is within the O(h) bias of the chain at T = 1 (h = 0.02).
    let exact = sde_core::problems::Moments::mean(&ou, 1.0, &x0);
    for (c, e) in exact.iter().enumerate() {
        assert!((stats.mean(grid.n_save() - 1, c) - e).abs() < 0.05);
    }
}
