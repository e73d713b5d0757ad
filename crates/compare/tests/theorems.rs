//! Theorem-shaped checks. The sign-descent lemma behind the DSignSGD bounds (MATH.md §5.4,
//! candidate (b) for ℓ_ν, [RECONSTRUCTED] as the paper's constant): `y · 2Ξ_ν(y) ≥ ℓ_ν min(y², |y|)`
//! with `ℓ_ν = 2Ξ_ν(1)`, pointwise over a grid of ν and y, and sharp (equality at |y| = 1, so no
//! larger constant works).

use models::special::{sign_chord, sign_slope_at_zero, xi};

#[test]
fn sign_descent_lemma_holds_pointwise_and_is_sharp() {
    let nus = [
        0.3,
        0.5,
        1.0,
        1.5,
        2.0,
        2.5,
        3.0,
        5.0,
        10.0,
        30.0,
        100.0,
        1e4,
        f64::INFINITY,
    ];
    // |y| from 1e-6 to 1e6, 40 points per decade, both signs, and 0.
    let mut ys = vec![0.0];
    for i in -240..=240 {
        let y = 10f64.powf(i as f64 / 40.0);
        ys.push(y);
        ys.push(-y);
    }
    for &nu in &nus {
        let ell = sign_chord(nu);
        assert!(ell > 0.0 && ell < 1.0, "ν = {nu}: ℓ = {ell}");
        for &y in &ys {
            let lhs = y * 2.0 * xi(nu, y);
            let rhs = ell * (y * y).min(y.abs());
            // Rounding only: both sides are computed to ~1e-15 relative.
            assert!(
                lhs >= rhs * (1.0 - 1e-12),
                "ν = {nu}, y = {y}: y·2Ξ = {lhs} < ℓ min(y², |y|) = {rhs}"
            );
        }
        // Sharp: at y = ±1 both sides equal ℓ, so ℓ(1 + 1e-9) already fails there.
        for y in [1.0, -1.0] {
            let lhs = y * 2.0 * xi(nu, y);
            assert!((lhs - ell).abs() <= 1e-14, "ν = {nu}");
            assert!(lhs < ell * (1.0 + 1e-9));
        }
        // Candidate (a), the slope at 0, is larger and violates the bound at y = 1: the grid
        // check discriminates between the two readings of ℓ_ν.
        let slope = sign_slope_at_zero(nu);
        assert!(2.0 * xi(nu, 1.0) < slope * (1.0 - 1e-6), "ν = {nu}");
    }
}
