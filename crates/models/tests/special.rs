//! Special functions checked two ways (DESIGN.md "special"): ₂F₁ route against the
//! incomplete-beta route, closed forms, limits, and the value table of MATH.md §5.4.

// Reference values are quoted with their published digits (and the §5.4 table happens to contain
// 2/π and 1/√2 to 5 decimals).
#![allow(clippy::excessive_precision, clippy::approx_constant)]

use models::special::*;
use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// ν grid: 60 log-spaced values in [0.5, 100] plus integers (even ν is the degenerate case of
/// the connection formula) and half-integers.
fn nu_grid() -> Vec<f64> {
    let mut v: Vec<f64> = (0..60)
        .map(|i| 0.5 * 200f64.powf(i as f64 / 59.0))
        .collect();
    v.extend([
        1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 50.0, 99.0, 100.0,
    ]);
    v
}

/// y grid: 0, and ±100 log-spaced values in [1e-4, 1e3].
fn y_grid(max: f64) -> Vec<f64> {
    let mut v = vec![0.0];
    let span = (max / 1e-4).log10();
    for j in 0..100 {
        let a = 1e-4 * 10f64.powf(span * j as f64 / 99.0);
        v.push(a);
        v.push(-a);
    }
    v
}

#[test]
fn xi_hyp2f1_matches_incomplete_beta_on_grid() {
    let mut max_err = 0.0f64;
    let mut worst = (0.0, 0.0);
    for &nu in &nu_grid() {
        for &y in &y_grid(1e3) {
            let a = xi_via_beta(nu, y);
            let b = xi_via_hyp2f1(nu, y);
            let e = (a - b).abs();
            assert!(e.is_finite(), "non-finite at nu={nu}, y={y}: {a} vs {b}");
            if e > max_err {
                max_err = e;
                worst = (nu, y);
            }
        }
    }
    println!("max |Xi_2F1 - Xi_beta| = {max_err:e} at (nu, y) = {worst:?}");
    assert!(max_err <= 1e-12, "max error {max_err:e} at {worst:?}");
}

/// The production `xi` (finite sums for integer ν ≤ 64, else incomplete beta) against both
/// reference routes, integer ν included.
#[test]
fn production_xi_matches_both_routes() {
    let mut max_beta = 0.0f64;
    let mut max_hyp = 0.0f64;
    let mut nus = nu_grid();
    nus.extend((1..=64).map(f64::from));
    for &nu in &nus {
        for &y in &y_grid(1e3) {
            let x = xi(nu, y);
            max_beta = max_beta.max((x - xi_via_beta(nu, y)).abs());
            max_hyp = max_hyp.max((x - xi_via_hyp2f1(nu, y)).abs());
        }
    }
    println!("production xi: vs beta {max_beta:e}, vs 2F1 {max_hyp:e}");
    assert!(max_beta <= 1e-13 && max_hyp <= 1e-12);
    for y in [0.0, 1e-300, 2.0, -7.0, 1e200, -1e200] {
        assert_eq!(xi(1.0, y), xi_integer_nu(1, y));
        assert!((xi_integer_nu(5, y) - xi_via_beta(5.0, y)).abs() <= 1e-15);
        assert!((xi_via_beta(2.5, y) - xi_via_hyp2f1(2.5, y)).abs() <= 1e-15);
    }
    // Tiny arguments keep their relative precision: Ξ_ν(y) = p_ν(0) y (1 + O(y²)).
    for nu in [0.5, 1.0, 2.5, 7.0] {
        let y = 3e-200;
        let lin = student_t_pdf(nu, 0.0) * y;
        assert!((xi(nu, y) / lin - 1.0).abs() <= 1e-14, "nu={nu}");
        assert!((xi_via_beta(nu, -y) / -lin - 1.0).abs() <= 1e-14, "nu={nu}");
    }
}

#[test]
fn xi_routes_agree_far_in_the_tails() {
    // |y| up to 1e8: the tail mass (~|y|^-nu) must not be rounded away.
    let mut max_err = 0.0f64;
    for &nu in &[0.5, 0.7, 1.0, 2.0, 3.5, 10.0] {
        for &y in &[1e4, 1e5, 1e6, 1e7, 1e8] {
            for y in [y, -y] {
                max_err = max_err.max((xi_via_beta(nu, y) - xi_via_hyp2f1(nu, y)).abs());
            }
        }
    }
    println!("tails: max |Xi_2F1 - Xi_beta| = {max_err:e}");
    assert!(max_err <= 1e-12);
}

/// MATH.md §5.5 closed forms, ν = 1..4.
fn closed_form(nu: u32, y: f64) -> f64 {
    match nu {
        1 => y.atan() / PI,
        2 => y / (2.0 * (2.0 + y * y).sqrt()),
        3 => {
            let u = y / 3f64.sqrt();
            (u.atan() + u / (1.0 + y * y / 3.0)) / PI
        }
        4 => {
            let q = 1.0 + y * y / 4.0;
            0.375 * (y / q.sqrt()) * (1.0 - y * y / (12.0 * q))
        }
        _ => unreachable!(),
    }
}

#[test]
fn closed_forms_nu_1_to_4() {
    let mut max_sum = 0.0f64;
    let mut max_beta = 0.0f64;
    let mut max_hyp = 0.0f64;
    for nu in 1..=4u32 {
        for &y in &y_grid(1e3) {
            let exact = closed_form(nu, y);
            max_sum = max_sum.max((xi(nu as f64, y) - exact).abs());
            max_beta = max_beta.max((xi_via_beta(nu as f64, y) - exact).abs());
            max_hyp = max_hyp.max((xi_via_hyp2f1(nu as f64, y) - exact).abs());
        }
    }
    println!(
        "closed forms: finite sums {max_sum:e}, beta route {max_beta:e}, 2F1 route {max_hyp:e}"
    );
    assert!(max_sum <= 1e-15, "finite sums: {max_sum:e}");
    assert!(max_beta <= 1e-14, "beta route: {max_beta:e}");
    assert!(max_hyp <= 1e-13, "2F1 route: {max_hyp:e}");
}

#[test]
fn lower_tail_keeps_relative_precision() {
    // F_1(-y) = atan(1/y)/pi, F_2(-y) = 1/(sqrt(2+y²)(sqrt(2+y²)+y)) for y > 0.
    for &y in &[1.0f64, 10.0, 1e3, 1e6, 1e8] {
        let f1 = (1.0 / y).atan() / PI;
        let r = (2.0 + y * y).sqrt();
        let f2 = 1.0 / (r * (r + y));
        let e1 = (student_t_cdf(1.0, -y) / f1 - 1.0).abs();
        let e2 = (student_t_cdf(2.0, -y) / f2 - 1.0).abs();
        assert!(
            e1 <= 1e-13 && e2 <= 1e-13,
            "y={y}: rel errors {e1:e}, {e2:e}"
        );
        assert!((student_t_cdf(1.0, y) - (1.0 - f1)).abs() <= 1e-15);
    }
}

/// `F_ν(y) = Φ(y) − φ(y)(y + y³)/(4ν) + O(ν⁻²)` (Cornish–Fisher / Edgeworth first term), and
/// `max_y φ(y)(y + y³)/4 = 0.15785` (at `y ≈ 1.5`). So `|Ξ_ν − Ξ_∞| ≤ 0.16/ν + O(ν⁻²)`; we assert
/// `0.16/ν + 0.3/ν²` (the second-order coefficient is 0.20–0.23 for ν ≥ 10, see the printout), and
/// the sharper statement that `ν(Ξ_ν − Ξ_∞)` converges to the first-order term at rate `1/ν`.
#[test]
fn large_nu_tends_to_gaussian() {
    let ys: Vec<f64> = (0..=120).map(|i| -6.0 + 0.1 * i as f64).collect();
    for &nu in &[10.0, 30.0, 100.0, 1e3, 1e4, 1e5, 1e6] {
        let mut max_diff = 0.0f64;
        let mut max_second = 0.0f64;
        for &y in &ys {
            let d = xi(nu, y) - gaussian_xi(y);
            let first = -normal_pdf(y) * (y + y * y * y) / 4.0;
            max_diff = max_diff.max(d.abs());
            max_second = max_second.max((nu * d - first).abs() * nu);
        }
        println!(
            "nu={nu:e}: max|Xi_nu - Xi_inf| = {max_diff:.3e} (bound {:.3e}); nu^2 |Xi_nu - Xi_inf - first/nu| <= {max_second:.3}",
            0.16 / nu + 1.0 / (nu * nu)
        );
        assert!(max_diff <= 0.16 / nu + 0.3 / (nu * nu), "nu={nu}");
        // Second-order remainder: |ν(Ξ_ν − Ξ_∞) − first| ≤ 0.3/ν (observed 0.20–0.23); at
        // ν = 1e6 this needs both Ξ_ν and erf accurate to ~1e-13.
        assert!(
            max_second <= 0.3,
            "nu={nu}: second-order coefficient {max_second}"
        );
    }
    for &y in &ys {
        assert_eq!(xi(f64::INFINITY, y), gaussian_xi(y));
        assert!((gaussian_xi(y) - (normal_cdf(y) - 0.5)).abs() <= 1e-15);
    }
}

#[test]
fn value_table_of_math_5_4() {
    // (ν, 2p_ν(0), 2F_ν(1) − 1), to 5 decimals.
    let table = [
        (1.0, 0.63662, 0.50000),
        (2.0, 0.70711, 0.57735),
        (3.0, 0.73511, 0.60900),
        (5.0, 0.75921, 0.63678),
        (10.0, 0.77822, 0.65911),
        (100.0, 0.79589, 0.68028),
        (f64::INFINITY, 0.79788, 0.68269),
    ];
    for (nu, slope, chord) in table {
        assert!(
            (sign_slope_at_zero(nu) - slope).abs() <= 5e-6,
            "slope nu={nu}"
        );
        assert!((sign_chord(nu) - chord).abs() <= 5e-6, "chord nu={nu}");
        assert!((2.0 * student_t_pdf(nu, 0.0) - sign_slope_at_zero(nu)).abs() <= 1e-15);
        assert!((sign_chord(nu) - (2.0 * student_t_cdf(nu, 1.0) - 1.0)).abs() <= 1e-14);
    }
    assert!((gaussian_sign_slope_at_zero() - 0.79788).abs() <= 5e-6);
    assert!((gaussian_sign_chord() - 0.68269).abs() <= 5e-6);
    // The "formula" column of the Monte Carlo table (E sign(g + sT) = 2Ξ_ν(g/s)), to 4 decimals.
    for (nu, g, s, formula) in [
        (1.0, 0.3, 2.0, 0.0948),
        (3.0, -1.0, 0.5, -0.8607),
        (2.5, 0.7, 1.3, 0.3656),
    ] {
        assert!((2.0 * xi(nu, g / s) - formula).abs() <= 5e-5, "nu={nu}");
    }
}

#[test]
fn pdf_is_derivative_of_cdf() {
    for &nu in &[0.5, 1.0, 2.5, 7.0, 50.0] {
        for &y in &[-30.0, -2.0, -0.3, 0.0, 0.1, 1.0, 4.0] {
            let h = 1e-5 * (1.0 + f64::abs(y));
            let fd = (xi(nu, y + h) - xi(nu, y - h)) / (2.0 * h);
            let p = student_t_pdf(nu, y);
            assert!(
                (fd - p).abs() <= 1e-8 * (1.0 + p),
                "nu={nu} y={y}: {fd} vs {p}"
            );
        }
    }
    // ν = 1: Cauchy density.
    for &y in &[-3.0, 0.0, 0.5, 10.0] {
        let c = 1.0 / (PI * (1.0 + y * y));
        assert!((student_t_pdf(1.0, y) / c - 1.0).abs() <= 1e-15);
    }
    assert_eq!(student_t_pdf(f64::INFINITY, 0.3), normal_pdf(0.3));
}

#[test]
fn known_hyp2f1_values() {
    let zs: [f64; 14] = [
        -1e9,
        -1e6,
        -50.0,
        -3.0,
        -0.9,
        -0.3,
        0.1,
        0.5,
        0.75,
        0.9,
        0.99,
        0.9999,
        1.0 - 1e-6,
        1.0 - 1e-9,
    ];
    let rel = |a: f64, b: f64| ((a - b) / b).abs();
    for &z in &zs {
        // 2F1(1,1;2;z) = −ln(1−z)/z  (c − a − b = 0: logarithmic case).
        let log = -(-z).ln_1p() / z;
        assert!(rel(hyp2f1(1.0, 1.0, 2.0, z), log) <= 1e-12, "log z={z}");
        // 2F1(1,1;3;z) = 2[z + (1−z)ln(1−z)]/z²  (c − a − b = 1).
        if z.abs() > 1e-2 {
            let f = 2.0 * (z + (1.0 - z) * (-z).ln_1p()) / (z * z);
            assert!(rel(hyp2f1(1.0, 1.0, 3.0, z), f) <= 1e-12, "F(1,1;3) z={z}");
        }
        // 2F1(½,½;1;z) = 2K(z)/π = 1/AGM(1, √(1−z))  (c − a − b = 0, non-unit parameters).
        let (mut a, mut b) = (1.0f64, (1.0 - z).sqrt());
        for _ in 0..60 {
            let t = 0.5 * (a + b);
            b = (a * b).sqrt();
            a = t;
        }
        assert!(rel(hyp2f1(0.5, 0.5, 1.0, z), 1.0 / a) <= 1e-12, "AGM z={z}");
        // Euler transform across c − a − b = −1 and +1:
        // 2F1(3/2,3/2;2;z) = (1−z)^{−1} 2F1(½,½;2;z).
        let lhs = hyp2f1(1.5, 1.5, 2.0, z);
        let rhs = hyp2f1(0.5, 0.5, 2.0, z) / (1.0 - z);
        assert!(rel(lhs, rhs) <= 1e-12, "Euler z={z}");
        if z < 0.0 {
            // 2F1(½,1;3/2;−x²) = atan(x)/x.
            let x = (-z).sqrt();
            assert!(
                rel(hyp2f1(0.5, 1.0, 1.5, z), x.atan() / x) <= 1e-13,
                "atan z={z}"
            );
        } else {
            // 2F1(½,½;3/2;x²) = asin(x)/x  (c − a − b = ½: generic connection). The reference
            // uses asin(x) = atan2(x, √(1−x²)) with 1 − x² = 1 − z exact: `asin` itself is
            // ill-conditioned near 1.
            let x = z.sqrt();
            let asin = x.atan2((1.0 - z).sqrt());
            assert!(
                rel(hyp2f1(0.5, 0.5, 1.5, z), asin / x) <= 1e-12,
                "asin z={z}"
            );
        }
    }
    // Gauss's sum at z = 1: Γ(c)Γ(c−a−b)/(Γ(c−a)Γ(c−b)); 2F1(1,1;3;1) = 2, 2F1(½,½;2;1) = 4/π.
    assert!(rel(hyp2f1(1.0, 1.0, 3.0, 1.0), 2.0) <= 1e-14);
    assert!(rel(hyp2f1(0.5, 0.5, 2.0, 1.0), 4.0 / PI) <= 1e-14);
    // Terminating series: 2F1(−2,b;c;z) = 1 − 2bz/c + b(b+1)z²/(c(c+1)), at any z.
    for &z in &[-7.0, 0.3, 5.0] {
        let (b, c) = (1.7, 2.9);
        let p = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        assert!(rel(hyp2f1(-2.0, b, c, z), p) <= 1e-14);
    }
    // Trivial cases and domain.
    assert_eq!(hyp2f1(0.3, 0.4, 0.5, 0.0), 1.0);
    assert!(rel(hyp2f1(0.3, 2.5, 0.3, 0.6), 0.4f64.powf(-2.5)) <= 1e-14);
    assert!(hyp2f1(1.0, 1.0, -2.0, 0.5).is_nan());
    assert!(hyp2f1(1.0, 1.0, 2.0, 1.5).is_nan());
    assert!(hyp2f1(1.0, 1.0, 2.0, 1.0).is_nan());
}

#[test]
fn gamma_ratio_half_is_accurate_across_branches() {
    // Half-integer steps have exact rational/π values: Γ(n+½)/Γ(n) and Γ(n+1)/Γ(n+½).
    // R(n) = Γ(n+½)/Γ(n) = √π (2n)! / (4ⁿ n! (n−1)!) — built by the exact recurrence in f64.
    let mut r = PI.sqrt() / 2.0; // R(1) = Γ(3/2)/Γ(1)
    for n in 1..=60u32 {
        let x = f64::from(n);
        assert!(((gamma_ratio_half(x) - r) / r).abs() <= 2e-15, "x={x}");
        r *= (x + 0.5) / x; // R(n+1) = R(n) (n+½)/n
    }
    // Γ(x+½)/Γ(x) = √x (1 − 1/(8x) + 1/(128x²) + 5/(1024x³) − 21/(32768x⁴) + O(x⁻⁵)); the
    // truncation is below 1e-18 relative from x = 1e3.
    for &x in &[1e3f64, 1e4, 1e8] {
        let asym = x.sqrt()
            * (1.0 - 1.0 / (8.0 * x) + 1.0 / (128.0 * x * x) + 5.0 / (1024.0 * x * x * x)
                - 21.0 / (32768.0 * x.powi(4)));
        assert!(
            ((gamma_ratio_half(x) - asym) / asym).abs() <= 2e-15,
            "x={x}"
        );
    }
    // Exact values: Γ(3/2)/Γ(1) = √π/2, Γ(1)/Γ(½) = 1/√π.
    assert!((gamma_ratio_half(1.0) - PI.sqrt() / 2.0).abs() <= 1e-15);
    assert!((gamma_ratio_half(0.5) - 1.0 / PI.sqrt()).abs() <= 1e-15);
    // The recurrence R(x+1) = R(x)(x+½)/x across the branch point x = 30, at non-integer x.
    for &x in &[0.3f64, 7.7, 28.6, 29.3, 29.9, 30.2, 44.4] {
        let lhs = gamma_ratio_half(x + 1.0);
        let rhs = gamma_ratio_half(x) * (x + 0.5) / x;
        assert!(((lhs - rhs) / rhs).abs() <= 2e-15, "x={x}");
    }
}

#[test]
fn invalid_arguments_give_nan() {
    for nu in [0.0, -1.0, f64::NAN] {
        assert!(xi(nu, 1.0).is_nan());
        assert!(student_t_cdf(nu, 1.0).is_nan());
        assert!(student_t_pdf(nu, 1.0).is_nan());
        assert!(xi_via_hyp2f1(nu, 1.0).is_nan());
        assert!(sign_slope_at_zero(nu).is_nan());
    }
    assert!(xi(2.0, f64::NAN).is_nan());
    assert_eq!(xi(2.0, f64::INFINITY), 0.5);
    assert_eq!(xi(2.0, f64::NEG_INFINITY), -0.5);
    assert_eq!(student_t_cdf(3.0, 0.0), 0.5);
    assert_eq!(gaussian_xi(1.0), 0.5 * erf(FRAC_1_SQRT_2));
    assert!(xi_integer_nu(0, 1.0).is_nan());
}

/// Reference values (30+ digits, standard tables) for our erf/erfc, which replace statrs' (see
/// `special::erf` for why): ≤ 5e-16 relative; and consistency of the series (erf) with the
/// continued fraction (erfc) where both apply.
#[test]
fn erf_reference_values() {
    let erf_refs = [
        (0.5, 0.520_499_877_813_046_537_682_746_653_891_964_5),
        (
            FRAC_1_SQRT_2,
            0.682_689_492_137_085_897_170_465_091_264_075_8,
        ),
        (1.0, 0.842_700_792_949_714_869_341_220_635_082_609_3),
        (2.0, 0.995_322_265_018_952_734_162_069_256_367_252_9),
    ];
    for (x, v) in erf_refs {
        assert!(((erf(x) - v) / v).abs() <= 5e-16, "erf({x})");
        assert!(((erf(-x) + v) / v).abs() <= 5e-16, "erf(-{x})");
    }
    let erfc_refs = [
        (3.0, 2.209_049_699_858_544_137_277_612_958_232_037e-5),
        (5.0, 1.537_459_794_428_034_850_188_343_485_383e-12),
        (10.0, 2.088_487_583_762_544_757_000_786_294_957_788e-45),
    ];
    for (x, v) in erfc_refs {
        assert!(((erfc(x) - v) / v).abs() <= 5e-16, "erfc({x})");
        assert!(((erfc(-x) - (2.0 - v)) / 2.0).abs() <= 2e-16, "erfc(-{x})");
    }
    let mut max_diff = 0.0f64;
    for i in 0..=4500 {
        let x = 1.5 + 1e-3 * i as f64;
        max_diff = max_diff.max((erf(x) - (1.0 - erfc(x))).abs());
    }
    println!("max |erf - (1 - erfc)| on [1.5, 6] = {max_diff:e}");
    assert!(max_diff <= 5e-15);
    assert_eq!(erf(0.0), 0.0);
    assert_eq!(erf(7.0), 1.0);
    assert_eq!(erf(f64::NEG_INFINITY), -1.0);
    assert_eq!(erfc(f64::INFINITY), 0.0);
    // Φ in the lower tail keeps relative precision: Φ(−10) = erfc(10/√2)/2 = 7.619853024160527e-24.
    assert!((normal_cdf(-10.0) / 7.619_853_024_160_526_7e-24 - 1.0).abs() <= 1e-14);
}

/// The per-ν table of Ξ against the exact routes on a dense grid (0, ±[1e-6, 1e8] log-spaced,
/// plus a fine linear grid over the core and the first tail pieces, plus ±∞): absolute error
/// ≤ 1e-12 for non-integer and integer ν in [0.5, 100]. The density matches `student_t_pdf`
/// exactly and is the derivative of the table (central differences, relative 1e-6 plus the
/// rounding of the difference quotient).
#[test]
fn xi_table_matches_exact_xi_everywhere() {
    let nus = [
        0.5, 0.51, 0.75, 1.0, 1.3, 2.0, 2.5, 3.0, 3.7, 5.0, 7.25, 10.0, 16.5, 30.0, 49.9, 64.0,
        77.7, 100.0,
    ];
    let mut ys: Vec<f64> = (0..=1400)
        .map(|i| 1e-6 * 10f64.powf(14.0 * i as f64 / 1400.0))
        .collect();
    for &nu in &nus {
        let top = 1.5 * (24.0f64 * nu).sqrt();
        ys.extend((1..=2000).map(|i| top * i as f64 / 2000.0));
    }
    for nu in nus {
        let table = XiTable::new(nu).unwrap();
        assert!(table.pieces().is_some(), "ν = {nu} not tabulated");
        let mut max_err = 0.0f64;
        let mut worst = 0.0;
        for &a in &ys {
            for y in [a, -a] {
                let err = (table.xi(y) - xi(nu, y)).abs();
                if err > max_err {
                    max_err = err;
                    worst = y;
                }
            }
        }
        assert_eq!(table.xi(0.0), 0.0);
        assert_eq!(table.xi(f64::INFINITY), 0.5);
        assert_eq!(table.xi(f64::NEG_INFINITY), -0.5);
        assert!(table.xi(f64::NAN).is_nan());
        println!(
            "ν = {nu}: pieces {:?}, max |Ξ_table − Ξ| = {max_err:.2e} at y = {worst:.3e}",
            table.pieces()
        );
        assert!(max_err <= 1e-12, "ν = {nu}: {max_err:e} at y = {worst}");
        for y in [-7.0, -1.0, 0.3, 2.0, 25.0] {
            assert_eq!(table.pdf(y), student_t_pdf(nu, y));
            let hstep = 1e-5 * (1.0 + y.abs());
            let fd = (table.xi(y + hstep) - table.xi(y - hstep)) / (2.0 * hstep);
            let p = table.pdf(y);
            // Rounding of Ξ (≈ 1e-16) and the table error (≤ 1e-13) divided by the step.
            let tol = 1e-6 * p + 2e-13 / hstep;
            assert!((fd - p).abs() <= tol, "ν = {nu}, y = {y}: {fd} vs {p}");
        }
    }
}

#[test]
fn xi_table_rejects_bad_nu() {
    for nu in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = XiTable::new(nu).unwrap_err().to_string();
        assert!(err.contains("nu"), "{err}");
    }
}

/// `StudentTNoise` takes the table for non-integer ν: its sign mean and Jacobian agree with the
/// exact `2Ξ_ν(g/s)` and `2p_ν(g/s)/s` to 1e-12 (σ1 = 0, so the Jacobian is diagonal).
#[test]
fn student_t_noise_uses_an_accurate_table() {
    use models::noise::{GradientNoise, StudentTNoise};
    let g = [-40.0, -3.0, -0.7, 0.0, 1e-9, 0.4, 2.2, 9.0, 1e4];
    let d = g.len();
    for nu in [0.8, 2.5, 7.3, 70.5] {
        let noise = StudentTNoise::isotropic(d, nu, 1.3, 0.0).unwrap();
        assert_eq!(noise.xi_table().map(|t| t.nu()), Some(nu));
        let mut m = vec![0.0; d];
        noise.sign_mean(&g, &mut m);
        let mut jv = vec![0.0; d];
        noise.sign_mean_jvp(&g, &[1.0; 9], &mut jv);
        for j in 0..d {
            let y = g[j] / 1.3;
            assert!(
                (m[j] - 2.0 * xi(nu, y)).abs() <= 1e-12,
                "ν = {nu}, g = {}",
                g[j]
            );
            let p = 2.0 * student_t_pdf(nu, y) / 1.3;
            assert!(
                (jv[j] - p).abs() <= 1e-15 * p.abs(),
                "ν = {nu}, g = {}",
                g[j]
            );
        }
    }
}
