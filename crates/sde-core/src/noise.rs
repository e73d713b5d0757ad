//! Noise shapes: how the diffusion `b(t, x)` is laid out and multiplies a Brownian increment.

use serde::Serialize;
use std::fmt;

/// The structure of the diffusion of `dX = a dt + b dW`, with `X ∈ R^d`, `W ∈ R^m`.
///
/// The layout of the buffer a diffusion function fills depends on the shape, so that diagonal
/// problems never pay for a dense `d × d` matrix:
///
/// | shape | `m` | diffusion buffer |
/// |---|---|---|
/// | `Scalar` | 1 | the single column, `d` values |
/// | `Diagonal` | `d` | the diagonal, `d` values; component `i` is driven by `W_i` alone, `b_ii = b_ii(t, x_i)` |
/// | `General` | `m` | the `d × m` matrix, row-major (`b[i * m + j]`) |
/// | `Additive` | `m` | the `d × m` matrix, row-major, independent of `x` (it may depend on `t`) |
///
/// `General { commutative: true }` declares that the commutativity condition
/// `L^{j1} b^{j2} = L^{j2} b^{j1}` holds (with `L^j = Σ_k b_{kj} ∂_k`); Milstein accepts general
/// noise only under it, because without it the iterated integrals `I_(j1,j2)` (Lévy areas) do not
/// cancel. `Diagonal` declares diagonal noise in the usual (Milstein) sense: `b_ii` depends on
/// `(t, x_i)` only, so it is commutative and the schemes drop the cross terms (Milstein's and
/// Platen's). A diagonal matrix whose entries depend on other components must be declared
/// `General` (with zero off-diagonal entries). A diffusion that does not depend on `x` at all
/// can say so with [`crate::Sde::diffusion_is_state_independent`] in any layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NoiseShape {
    Scalar,
    Diagonal,
    General { m: usize, commutative: bool },
    Additive { m: usize },
}

impl NoiseShape {
    /// Dimension `m` of the Brownian motion for a state of dimension `d`.
    #[inline]
    pub fn noise_dim(&self, d: usize) -> usize {
        match *self {
            NoiseShape::Scalar => 1,
            NoiseShape::Diagonal => d,
            NoiseShape::General { m, .. } | NoiseShape::Additive { m } => m,
        }
    }

    /// Length of the diffusion buffer for a state of dimension `d`.
    #[inline]
    pub fn diffusion_len(&self, d: usize) -> usize {
        match *self {
            NoiseShape::Scalar | NoiseShape::Diagonal => d,
            NoiseShape::General { m, .. } | NoiseShape::Additive { m } => d * m,
        }
    }

    /// Whether the Milstein correction cancels or reduces to the commutative form.
    pub fn is_commutative(&self) -> bool {
        match *self {
            NoiseShape::Scalar | NoiseShape::Diagonal | NoiseShape::Additive { .. } => true,
            NoiseShape::General { commutative, .. } => commutative,
        }
    }

    /// `out = b · dw` for a diffusion buffer `b` in this shape's layout.
    #[inline]
    pub fn apply(&self, b: &[f64], dw: &[f64], out: &mut [f64]) {
        match *self {
            NoiseShape::Scalar => {
                let w = dw[0];
                for (o, bi) in out.iter_mut().zip(b) {
                    *o = bi * w;
                }
            }
            NoiseShape::Diagonal => {
                for ((o, bi), w) in out.iter_mut().zip(b).zip(dw) {
                    *o = bi * w;
                }
            }
            NoiseShape::General { m, .. } | NoiseShape::Additive { m } => {
                for (o, row) in out.iter_mut().zip(b.chunks_exact(m)) {
                    *o = row.iter().zip(dw).map(|(r, w)| r * w).sum();
                }
            }
        }
    }

    /// Column `j` of the diffusion (the coefficient of `dW_j`) as a `d`-vector.
    #[inline]
    pub fn column(&self, b: &[f64], j: usize, out: &mut [f64]) {
        match *self {
            NoiseShape::Scalar => out.copy_from_slice(b),
            NoiseShape::Diagonal => {
                out.fill(0.0);
                out[j] = b[j];
            }
            NoiseShape::General { m, .. } | NoiseShape::Additive { m } => {
                for (o, row) in out.iter_mut().zip(b.chunks_exact(m)) {
                    *o = row[j];
                }
            }
        }
    }
}

impl fmt::Display for NoiseShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NoiseShape::Scalar => write!(f, "scalar noise"),
            NoiseShape::Diagonal => write!(f, "diagonal noise"),
            NoiseShape::General {
                m,
                commutative: true,
            } => write!(f, "general commutative noise (m = {m})"),
            NoiseShape::General {
                m,
                commutative: false,
            } => write!(f, "general non-commutative noise (m = {m})"),
            NoiseShape::Additive { m } => write!(f, "additive noise (m = {m})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_matches_dense_product() {
        let d = 3;
        let dw = [0.5, -1.0, 2.0];
        let mut out = [0.0; 3];
        NoiseShape::Diagonal.apply(&[1.0, 2.0, 3.0], &dw, &mut out);
        assert_eq!(out, [0.5, -2.0, 6.0]);
        NoiseShape::Scalar.apply(&[1.0, 2.0, 3.0], &dw[..1], &mut out);
        assert_eq!(out, [0.5, 1.0, 1.5]);
        let g = NoiseShape::General {
            m: 2,
            commutative: false,
        };
        let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        g.apply(&b, &dw[..2], &mut out);
        assert_eq!(out, [-1.5, -2.5, -3.5]);
        let mut col = [0.0; 3];
        g.column(&b, 1, &mut col);
        assert_eq!(col, [2.0, 4.0, 6.0]);
        assert_eq!(g.diffusion_len(d), 6);
        assert_eq!(NoiseShape::Diagonal.noise_dim(d), 3);
    }
}
