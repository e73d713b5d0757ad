//! Data sets (shapes, split, standardization) and network losses (gradient and Hessian-vector
//! product against central finite differences, per-example gradients against the full gradient).

use models::data::{DatasetName, Split, Targets};
use models::loss::Loss;
use models::mlp::{Activation, Mlp, MlpSpec, Objective};
use rand::RngExt;
use rand_distr::StandardNormal;

mod common;

#[test]
fn shipped_data_sets_have_their_published_shapes() {
    let iris = DatasetName::Iris.load();
    assert_eq!((iris.rows(), iris.features()), (150, 4));
    assert_eq!(iris.targets().classes(), Some(3));
    // 50 rows per class.
    if let Targets::Classes { labels, .. } = iris.targets() {
        for c in 0..3 {
            assert_eq!(labels.iter().filter(|&&l| l == c).count(), 50);
        }
    }
    let wine = DatasetName::WineQuality.load();
    assert_eq!((wine.rows(), wine.features()), (1599, 11));
    assert_eq!(wine.targets().classes(), None);
    let q: Vec<f64> = (0..wine.rows()).map(|i| wine.targets().as_f64(i)).collect();
    assert!(q.iter().all(|&v| (3.0..=8.0).contains(&v)));
    let diab = DatasetName::Diabetes.load();
    // 441, not the published 442: linfa-datasets reads the first data row of its CSV as a header.
    assert_eq!((diab.rows(), diab.features()), (441, 10));
    assert_eq!(diab.targets().classes(), None);
}

#[test]
fn unknown_data_set_lists_the_known_ones() {
    let e = DatasetName::parse("mnist").unwrap_err().to_string();
    assert!(e.contains("loss.dataset"), "{e}");
    for k in ["iris", "wine_quality", "diabetes"] {
        assert!(e.contains(k), "{e}");
    }
}

#[test]
fn split_sizes_standardization_and_seed() {
    for name in DatasetName::ALL {
        let raw = name.load();
        let s = Split::load(name, 0.25, 7).unwrap();
        let n = raw.rows();
        let n_test = (0.25 * n as f64).round() as usize;
        assert_eq!(s.test.rows(), n_test, "{name:?}");
        assert_eq!(s.train.rows(), n - n_test);
        let (mean, sd) = s.train.feature_moments();
        for (m, v) in mean.iter().zip(&sd) {
            assert!(m.abs() < 1e-12, "{name:?} mean {m}");
            assert!((v - 1.0).abs() < 1e-12, "{name:?} sd {v}");
        }
        // The split is a permutation of the raw rows: undo the standardization with the raw
        // training moments and compare the sorted multisets of rows.
        let mut all: Vec<Vec<f64>> = (0..s.train.rows())
            .map(|i| s.train.row(i).to_vec())
            .chain((0..s.test.rows()).map(|i| s.test.row(i).to_vec()))
            .collect();
        assert_eq!(all.len(), n);
        // Standardization is affine per feature with positive scale, so the order of any feature
        // across rows is preserved: the sorted first feature of the split, mapped back through
        // the raw sorted first feature, is an exact affine image.
        all.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let mut raw0: Vec<f64> = (0..n).map(|i| raw.row(i)[0]).collect();
        raw0.sort_by(f64::total_cmp);
        let (lo, hi) = (raw0[0], raw0[n - 1]);
        let (slo, shi) = (all[0][0], all[n - 1][0]);
        for (r, a) in raw0.iter().zip(&all) {
            let mapped = slo + (r - lo) / (hi - lo) * (shi - slo);
            assert!(
                (mapped - a[0]).abs() < 1e-9,
                "{name:?}: {mapped} vs {}",
                a[0]
            );
        }
        // Same seed, same bits; another seed, another split.
        assert_eq!(Split::load(name, 0.25, 7).unwrap(), s);
        assert_ne!(Split::load(name, 0.25, 8).unwrap().test, s.test);
    }
    let e = Split::load(DatasetName::Iris, 1.0, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("loss.test_fraction"), "{e}");
}

fn specs() -> Vec<MlpSpec> {
    let mut v = vec![MlpSpec::logistic(DatasetName::Iris, 3)];
    v.push(common::iris_mlp(4));
    v.push(MlpSpec {
        dataset: DatasetName::Iris,
        hidden: vec![4, 3],
        activation: Activation::Softplus,
        objective: Some(Objective::Squared),
        l2: 0.0,
        test_fraction: 0.2,
        seed: 5,
    });
    v.push(MlpSpec {
        dataset: DatasetName::WineQuality,
        hidden: vec![6],
        activation: Activation::Tanh,
        objective: None,
        l2: 0.0,
        test_fraction: 0.2,
        seed: 6,
    });
    v.push(MlpSpec {
        dataset: DatasetName::Diabetes,
        hidden: vec![3, 4],
        activation: Activation::Tanh,
        objective: None,
        l2: 0.1,
        test_fraction: 0.3,
        seed: 7,
    });
    v
}

fn random_point(net: &Mlp, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = sde_core::derive_stream(seed, 99);
    let x: Vec<f64> = net
        .x0()
        .iter()
        .map(|v| v + 0.3 * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let v: Vec<f64> = (0..net.dim()).map(|_| rng.sample(StandardNormal)).collect();
    (x, v)
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-300)
}

/// Central differences have error `O(h²)` ≈ 1e-10 relative here, rounding `ε f / h` ≈ 1e-11.
#[test]
fn gradient_matches_central_differences_coordinatewise() {
    for spec in specs() {
        let net = Mlp::new(spec.clone()).unwrap();
        let (x, _) = random_point(&net, 1);
        let d = net.dim();
        let mut g = vec![0.0; d];
        net.gradient(&x, &mut g);
        let h = 1e-5;
        let mut fd = vec![0.0; d];
        let mut xp = x.clone();
        for j in 0..d {
            xp[j] = x[j] + h;
            let fp = net.value(&xp);
            xp[j] = x[j] - h;
            let fm = net.value(&xp);
            xp[j] = x[j];
            fd[j] = (fp - fm) / (2.0 * h);
        }
        let r = rel(&g, &fd);
        assert!(r < 1e-7, "{spec:?}: relative error {r}");
    }
}

#[test]
fn hessian_vector_product_matches_differences_of_gradients_and_is_symmetric() {
    for spec in specs() {
        let net = Mlp::new(spec.clone()).unwrap();
        let (x, v) = random_point(&net, 2);
        let (_, u) = random_point(&net, 3);
        let d = net.dim();
        let mut hv = vec![0.0; d];
        net.hessian_vec(&x, &v, &mut hv);
        let h = 1e-5;
        let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let (mut gp, mut gm) = (vec![0.0; d], vec![0.0; d]);
        net.gradient(&xp, &mut gp);
        net.gradient(&xm, &mut gm);
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let r = rel(&hv, &fd);
        assert!(r < 1e-6, "{spec:?}: relative error {r}");
        // uᵀ H v = vᵀ H u (an identity independent of the finite differences).
        let mut hu = vec![0.0; d];
        net.hessian_vec(&x, &u, &mut hu);
        let a: f64 = u.iter().zip(&hv).map(|(p, q)| p * q).sum();
        let b: f64 = v.iter().zip(&hu).map(|(p, q)| p * q).sum();
        assert!(
            (a - b).abs() < 1e-10 * (a.abs() + b.abs() + 1.0),
            "{spec:?}: {a} vs {b}"
        );
    }
}

#[test]
fn per_example_gradients_average_to_the_gradient() {
    for spec in specs() {
        let mut spec = spec;
        spec.l2 = 0.0;
        let net = Mlp::new(spec.clone()).unwrap();
        let (x, _) = random_point(&net, 4);
        let (n, d) = (net.train_rows(), net.dim());
        let mut g = vec![0.0; d];
        net.gradient(&x, &mut g);
        let mut mean = vec![0.0; d];
        let mut gi = vec![0.0; d];
        for i in 0..n {
            net.example_gradient(&x, i, &mut gi);
            mean.iter_mut()
                .zip(&gi)
                .for_each(|(m, v)| *m += v / n as f64);
        }
        assert!(rel(&mean, &g) < 1e-12, "{spec:?}");
        // weighted_gradient over every row with weight 1/n is the gradient too.
        let rows: Vec<usize> = (0..n).collect();
        let w = vec![1.0 / n as f64; n];
        let mut gw = vec![0.0; d];
        net.weighted_gradient(&x, &rows, &w, &mut gw);
        assert!(rel(&gw, &g) < 1e-12, "{spec:?}");
        // G_cᵀ e_3 = ∇ℓ_3 − (1/n) Σ_i ∇ℓ_i... with ξ = e_3 the centring gives ∇ℓ_3 − ḡ.
        let mut xi = vec![0.0; n];
        xi[3] = 1.0;
        let mut c = vec![0.0; d];
        net.centred_gradient_mul(&x, &xi, &mut c);
        net.example_gradient(&x, 3, &mut gi);
        let want: Vec<f64> = gi.iter().zip(&g).map(|(a, b)| a - b).collect();
        assert!(rel(&c, &want) < 1e-10, "{spec:?}");
    }
}

#[test]
fn logistic_regression_is_globally_smooth_with_the_computed_constant() {
    // The Rayleigh quotient vᵀHv/‖v‖² never exceeds the reported L at random points.
    let net = Mlp::new(MlpSpec::logistic(DatasetName::Iris, 1)).unwrap();
    let l = net.smoothness().l_smooth.unwrap();
    for s in 0..20 {
        let (x, v) = random_point(&net, 100 + s);
        let mut hv = vec![0.0; net.dim()];
        net.hessian_vec(&x, &v, &mut hv);
        let q: f64 = v.iter().zip(&hv).map(|(a, b)| a * b).sum::<f64>()
            / v.iter().map(|a| a * a).sum::<f64>();
        assert!(q >= -1e-12 && q <= l, "{q} vs {l}");
    }
}

#[test]
fn bad_network_settings_name_their_key() {
    let mut s = MlpSpec::logistic(DatasetName::Diabetes, 1);
    s.objective = Some(Objective::CrossEntropy);
    assert!(Mlp::new(s)
        .unwrap_err()
        .to_string()
        .contains("loss.objective"));
    let mut s = MlpSpec::logistic(DatasetName::Iris, 1);
    s.hidden = vec![4, 0];
    assert!(Mlp::new(s)
        .unwrap_err()
        .to_string()
        .contains("loss.hidden[1]"));
    assert!(Activation::parse("relu")
        .unwrap_err()
        .to_string()
        .contains("loss.activation"));
    let mut s = MlpSpec::logistic(DatasetName::Iris, 1);
    s.l2 = -1.0;
    assert!(Mlp::new(s).unwrap_err().to_string().contains("l2"));
}

#[test]
fn accuracy_and_test_loss() {
    let net = Mlp::new(MlpSpec::logistic(DatasetName::Iris, 2)).unwrap();
    let x0 = net.x0().to_vec();
    let acc = net.test_accuracy(&x0).unwrap();
    assert!((0.0..=1.0).contains(&acc));
    // A few hundred gradient steps of logistic regression separate iris well above chance.
    let mut x = x0;
    let mut g = vec![0.0; net.dim()];
    for _ in 0..500 {
        net.gradient(&x, &mut g);
        x.iter_mut().zip(&g).for_each(|(a, b)| *a -= 0.5 * b);
    }
    assert!(net.test_accuracy(&x).unwrap() > 0.85);
    assert!(net.test_loss(&x) < net.test_loss(net.x0()));
    assert!(net.value(&x) < 0.2);
}

/// Distance in units in the last place between two finite doubles of the same sign.
fn ulps(a: f64, b: f64) -> u64 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
}

#[test]
fn tanh_slice_is_within_four_ulp_of_libm() {
    // A dense uniform grid over the whole non-saturated range, 4·10⁶ random points in [−1.5, 1.5] (where
    // the reduction's k = 1 cancellation lives), a log grid down to subnormals (where tanh z = z),
    // both signs, and the special values. The worst case seen is 4 ulp, at
    // |z| ≈ 0.21 (t = e/(e + 2) rounds three times, and t sits just below a binade edge).
    let mut z: Vec<f64> = (0..400_001)
        .map(|i| -25.0 + 50.0 * i as f64 / 400_000.0)
        .collect();
    z.extend((0..4000).flat_map(|i| {
        let v = 10f64.powf(-320.0 + 322.0 * i as f64 / 4000.0);
        [v, -v]
    }));
    let mut rng = sde_core::derive_stream(11, 0);
    z.extend((0..4_000_000).map(|_| rng.random_range(-1.5..1.5)));
    z.extend([0.0, -0.0, 1e300, -1e300, f64::INFINITY, f64::NEG_INFINITY]);
    let mut a = vec![0.0; z.len()];
    models::mlp::tanh_slice(&z, &mut a);
    let mut worst = (0, 0.0);
    for (zv, av) in z.iter().zip(&a) {
        let want = zv.tanh();
        assert_eq!(
            av.is_sign_negative(),
            want.is_sign_negative(),
            "sign at {zv}"
        );
        let u = ulps(*av, want);
        if u > worst.0 {
            worst = (u, *zv);
        }
    }
    assert!(worst.0 <= 4, "{} ulp at z = {}", worst.0, worst.1);
    // The wide (AVX2/AVX-512) path, when this CPU has one, gives the baseline's bits.
    let mut base = vec![0.0; z.len()];
    models::mlp::tanh_slice_baseline(&z, &mut base);
    assert!(a.iter().zip(&base).all(|(x, y)| x.to_bits() == y.to_bits()));
    let mut nan = [0.0];
    models::mlp::tanh_slice(&[f64::NAN], &mut nan);
    assert!(nan[0].is_nan());
}

/// Test points for the softplus and logistic kernels: a dense grid over [−40, 40] (both
/// branches and the whole range where `log1p(e^{−|z|})` is above an ulp of `z`), 4·10⁶ random
/// points in [−3, 3] (where `u = 1 + t` crosses √2 and 2), a log grid of both signs from 1e-320
/// to 1e3 (`softplus z ≈ ln 2 + z/2` near 0, `≈ e^z` far below: down to the subnormals and to
/// underflow at z ≈ −745), and the special values.
fn softplus_points() -> Vec<f64> {
    let mut z: Vec<f64> = (0..800_001)
        .map(|i| -40.0 + 80.0 * i as f64 / 800_000.0)
        .collect();
    z.extend((0..8000).flat_map(|i| {
        let v = 10f64.powf(-320.0 + 323.0 * i as f64 / 8000.0);
        [v, -v]
    }));
    z.extend((0..20_000).map(|i| -760.0 + 80.0 * i as f64 / 20_000.0));
    let mut rng = sde_core::derive_stream(12, 0);
    z.extend((0..4_000_000).map(|_| rng.random_range(-3.0..3.0)));
    z.extend([
        0.0,
        -0.0,
        1e300,
        -1e300,
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]);
    z
}

/// The worst ulp distance of `got` from `want(z)` over `z` (both nonnegative here).
fn worst_ulps(z: &[f64], got: &[f64], want: impl Fn(f64) -> f64) -> (u64, f64) {
    let mut worst = (0, 0.0);
    for (zv, gv) in z.iter().zip(got) {
        let w = want(*zv);
        assert!(gv.is_sign_positive() && !gv.is_nan(), "{gv} at z = {zv}");
        let u = ulps(*gv, w);
        if u > worst.0 {
            worst = (u, *zv);
        }
    }
    worst
}

#[test]
fn softplus_slice_is_within_four_ulp_of_libm() {
    let z = softplus_points();
    let mut a = vec![0.0; z.len()];
    models::mlp::softplus_slice(&z, &mut a);
    // The stable reference through libm: max(z, 0) + log1p(exp(−|z|)), itself within ~1.5 ulp.
    // The worst case seen is 2 ulp (at z ≈ −36, where the result is ≈ t and t's own error shows).
    let worst = worst_ulps(&z, &a, |v| v.max(0.0) + (-v.abs()).exp().ln_1p());
    println!("softplus_slice: worst {} ulp at z = {}", worst.0, worst.1);
    assert!(worst.0 <= 4, "{} ulp at z = {}", worst.0, worst.1);
    let (last, n) = (a.len(), z.len());
    assert_eq!(a[last - 2], f64::INFINITY);
    assert_eq!(a[last - 1], 0.0);
    assert_eq!(z[n - 1], f64::NEG_INFINITY);
    // The wide (AVX2/AVX-512) path, when this CPU has one, gives the baseline's bits.
    let mut base = vec![0.0; z.len()];
    models::mlp::softplus_slice_baseline(&z, &mut base);
    assert!(a.iter().zip(&base).all(|(x, y)| x.to_bits() == y.to_bits()));
    let mut nan = [0.0];
    models::mlp::softplus_slice(&[f64::NAN], &mut nan);
    assert!(nan[0].is_nan());
}

#[test]
fn logistic_slice_is_within_four_ulp_of_libm() {
    let z = softplus_points();
    let mut s = vec![0.0; z.len()];
    models::mlp::logistic_slice(&z, &mut s);
    // Stable reference: 1/(1 + e^{−z}) for z ≥ 0, e^z/(1 + e^z) below. Worst case seen: 2 ulp.
    let worst = worst_ulps(&z, &s, |v| {
        if v >= 0.0 {
            1.0 / (1.0 + (-v).exp())
        } else {
            v.exp() / (1.0 + v.exp())
        }
    });
    println!("logistic_slice: worst {} ulp at z = {}", worst.0, worst.1);
    assert!(worst.0 <= 4, "{} ulp at z = {}", worst.0, worst.1);
    let mut base = vec![0.0; z.len()];
    models::mlp::logistic_slice_baseline(&z, &mut base);
    assert!(s.iter().zip(&base).all(|(x, y)| x.to_bits() == y.to_bits()));
    // The forward kernel of softplus layers writes both, with the bits of the two kernels,
    // wide or not.
    let mut sp = vec![0.0; z.len()];
    models::mlp::softplus_slice(&z, &mut sp);
    for wide in [true, false] {
        let (mut a, mut sl) = (vec![0.0; z.len()], vec![0.0; z.len()]);
        if wide {
            models::mlp::softplus_logistic_slice(&z, &mut a, &mut sl);
        } else {
            models::mlp::softplus_logistic_slice_baseline(&z, &mut a, &mut sl);
        }
        assert!(a.iter().zip(&sp).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(sl.iter().zip(&s).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    let mut nan = [0.0];
    models::mlp::logistic_slice(&[f64::NAN], &mut nan);
    assert!(nan[0].is_nan());
}

/// The forward pass over the training rows is reused while the parameters and the network are
/// the same: interleaving other passes, other parameters and another network of the same shape
/// on one thread must give the bits each call gives on a fresh thread.
#[test]
fn reused_forward_pass_gives_the_bits_of_a_fresh_one() {
    // The second network is softplus: its forward pass also keeps the slopes.
    let spec = |seed| MlpSpec {
        dataset: DatasetName::Iris,
        hidden: vec![5],
        activation: if seed == 1 {
            Activation::Tanh
        } else {
            Activation::Softplus
        },
        objective: None,
        l2: 0.0,
        test_fraction: 0.2,
        seed,
    };
    let (n1, n2) = (Mlp::new(spec(1)).unwrap(), Mlp::new(spec(2)).unwrap());
    let d = n1.dim();
    assert_eq!(d, n2.dim());
    let t1 = n1.x0().to_vec();
    let t2: Vec<f64> = t1.iter().map(|v| 0.9 * v + 0.01).collect();
    let grad = |net: &Mlp, th: &[f64]| {
        let mut g = vec![0.0; d];
        net.gradient(th, &mut g);
        let mut c = vec![0.0; d];
        let xi: Vec<f64> = (0..net.train_rows()).map(|i| (i as f64).sin()).collect();
        net.centred_gradient_mul(th, &xi, &mut c);
        let mut h = vec![0.0; d];
        net.hessian_vec(th, &t2, &mut h);
        (g, c, h, net.value(th))
    };
    let fresh =
        |net: &Mlp, th: &[f64]| std::thread::scope(|s| s.spawn(|| grad(net, th)).join().unwrap());
    let want = [
        fresh(&n1, &t1),
        fresh(&n1, &t2),
        fresh(&n2, &t1),
        fresh(&n2, &t2),
    ];
    let mut g = vec![0.0; d];
    for round in 0..2 {
        for (k, (net, th)) in [(&n1, &t1), (&n1, &t2), (&n2, &t1), (&n2, &t2)]
            .into_iter()
            .enumerate()
        {
            // Passes over other rows in between.
            net.weighted_gradient(th, &[3, 1, 4], &[0.5, 0.25, 0.25], &mut g);
            let _ = net.held_out_accuracy(th);
            let got = grad(net, th);
            let same =
                |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same(&got.0, &want[k].0),
                "gradient, case {k}, round {round}"
            );
            assert!(same(&got.1, &want[k].1), "factor, case {k}, round {round}");
            assert!(same(&got.2, &want[k].2), "hvp, case {k}, round {round}");
            assert_eq!(got.3.to_bits(), want[k].3.to_bits());
            // Twice in a row: the reused pass.
            let again = grad(net, th);
            assert!(same(&again.0, &want[k].0) && same(&again.1, &want[k].1));
        }
    }
}

/// The small-batch path of `weighted_gradient` (one hidden layer) repeats the general path's
/// arithmetic: the same bits, for widths below, at and above a vector block (5, 32, 40), both
/// activations and objectives, repeated rows, and more rows than matrixmultiply's `kc` = 256
/// (where its sums over rows restart in blocks). Networks with two hidden layers take the
/// general path, so they match trivially; one is included to keep it so.
#[test]
fn small_batch_path_gives_the_bits_of_the_general_path() {
    let spec = |dataset, hidden: Vec<usize>, activation, objective, seed| MlpSpec {
        dataset,
        hidden,
        activation,
        objective,
        l2: 0.0,
        test_fraction: 0.2,
        seed,
    };
    let nets = [
        spec(
            DatasetName::WineQuality,
            vec![32],
            Activation::Tanh,
            None,
            1,
        ),
        spec(
            DatasetName::WineQuality,
            vec![40],
            Activation::Softplus,
            None,
            2,
        ),
        spec(DatasetName::Iris, vec![5], Activation::Tanh, None, 3),
        spec(
            DatasetName::Iris,
            vec![16],
            Activation::Softplus,
            Some(Objective::Squared),
            4,
        ),
        spec(DatasetName::Diabetes, vec![3], Activation::Tanh, None, 5),
        spec(DatasetName::Iris, vec![4, 3], Activation::Tanh, None, 6),
    ];
    for (case, sp) in nets.into_iter().enumerate() {
        let net = Mlp::new(sp).unwrap();
        let n = net.train_rows();
        let d = net.dim();
        let mut rng = sde_core::derive_stream(case as u64, 7);
        for (trial, m) in [1usize, 16, 128, 300].into_iter().enumerate() {
            let (th, _) = random_point(&net, 10 * case as u64 + trial as u64);
            let rows: Vec<usize> = (0..m).map(|_| rng.random_range(0..n)).collect();
            let w: Vec<f64> = (0..m).map(|_| rng.random_range(0.01..1.0)).collect();
            let (mut fast, mut general) = (vec![0.0; d], vec![0.0; d]);
            net.weighted_gradient(&th, &rows, &w, &mut fast);
            net.weighted_gradient_general(&th, &rows, &w, &mut general);
            for (j, (a, b)) in fast.iter().zip(&general).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "case {case}, {m} rows, coordinate {j}: {a} against {b}"
                );
            }
        }
    }
}
