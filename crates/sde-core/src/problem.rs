//! The problem: an Itô SDE `dX = a(t, X) dt + b(t, X) dW`.
//!
//! Coefficients write into caller-owned buffers, so integrating allocates nothing per step.
//! A problem is either a type implementing [`Sde`] (for models that carry parameters, or want
//! to share work between drift and diffusion), or a pair of closures wrapped by [`SdeFn`].

use crate::error::SdeError;
use crate::noise::NoiseShape;

/// An Itô SDE on `R^d` driven by an `m`-dimensional Brownian motion.
///
/// Every method receives a `scratch` slice of [`Sde::scratch_len`] values owned by the path's
/// workspace: a model that needs temporaries (a gradient, a Hessian-vector product) uses it
/// instead of allocating. `&self` is shared by all threads of an ensemble.
pub trait Sde: Sync {
    /// State dimension `d`.
    fn dim(&self) -> usize;
    /// Shape of the diffusion, which fixes `m` and the layout of [`Sde::diffusion`]'s buffer.
    fn noise(&self) -> NoiseShape;
    /// Length of the scratch slice the coefficient functions need.
    fn scratch_len(&self) -> usize {
        0
    }
    /// `out = a(t, x)`, length `d`.
    fn drift(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]);
    /// `out = b(t, x)` in the layout of [`NoiseShape`].
    fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]);
    /// `a = a(t, x)` and `b = b(t, x)`: [`Sde::drift`], then [`Sde::diffusion`] at the same point
    /// (the default), the same numbers. Override it to share work between the two (a model's
    /// gradient); schemes that need both at one state (weak order 2) call this.
    #[inline]
    fn drift_and_diffusion(
        &self,
        t: f64,
        x: &[f64],
        a: &mut [f64],
        b: &mut [f64],
        scratch: &mut [f64],
    ) {
        self.drift(t, x, a, scratch);
        self.diffusion(t, x, b, scratch);
    }
    /// `out = b(t, x) · dw`. Override it when the diffusion has structure a dense layout would
    /// waste (diagonal plus low rank, say); `b` is a buffer of `noise().diffusion_len(d)` values
    /// the default uses to hold the diffusion.
    fn diffusion_mul(
        &self,
        t: f64,
        x: &[f64],
        dw: &[f64],
        out: &mut [f64],
        b: &mut [f64],
        scratch: &mut [f64],
    ) {
        self.diffusion(t, x, b, scratch);
        self.noise().apply(b, dw, out);
    }
    /// The directional derivative of the diffusion, `out = Σ_k ∂_k b(t, x) v_k`, in the layout
    /// of the diffusion. Returns `false` when the problem does not supply it (the default), in
    /// which case Milstein falls back to its derivative-free (Runge–Kutta) form.
    fn diffusion_derivative(
        &self,
        _t: f64,
        _x: &[f64],
        _v: &[f64],
        _out: &mut [f64],
        _scratch: &mut [f64],
    ) -> bool {
        false
    }
    /// Whether [`Sde::diffusion_derivative`] is supplied.
    fn has_diffusion_derivative(&self) -> bool {
        false
    }
    /// Whether [`Sde::diffusion_mul`] is the default, [`Sde::diffusion`] followed by
    /// [`NoiseShape::apply`]. A scheme may then call `diffusion` and fuse the product `b · dw`
    /// into its own update loop (the same numbers, one pass over the state less). `false` by
    /// default; an implementation that overrides `diffusion_mul` must leave it `false`.
    fn diffusion_mul_is_default(&self) -> bool {
        false
    }
    /// Whether `b(t, x)` does not depend on `x` (it may depend on `t`): additive noise in any
    /// layout, without the dense `d × m` buffer [`NoiseShape::Additive`] implies. Schemes may
    /// then drop every difference of `b` (Platen's weak-2 step needs one diffusion product
    /// instead of `2m + 1`). `false` by default; [`NoiseShape::Additive`] implies it whatever
    /// this returns.
    fn diffusion_is_state_independent(&self) -> bool {
        false
    }
}

impl<S: Sde + ?Sized> Sde for &S {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn noise(&self) -> NoiseShape {
        (**self).noise()
    }
    fn scratch_len(&self) -> usize {
        (**self).scratch_len()
    }
    #[inline]
    fn drift(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        (**self).drift(t, x, out, scratch)
    }
    #[inline]
    fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        (**self).diffusion(t, x, out, scratch)
    }
    #[inline]
    fn diffusion_mul(
        &self,
        t: f64,
        x: &[f64],
        dw: &[f64],
        out: &mut [f64],
        b: &mut [f64],
        scratch: &mut [f64],
    ) {
        (**self).diffusion_mul(t, x, dw, out, b, scratch)
    }
    #[inline]
    fn diffusion_derivative(
        &self,
        t: f64,
        x: &[f64],
        v: &[f64],
        out: &mut [f64],
        scratch: &mut [f64],
    ) -> bool {
        (**self).diffusion_derivative(t, x, v, out, scratch)
    }
    #[inline]
    fn drift_and_diffusion(
        &self,
        t: f64,
        x: &[f64],
        a: &mut [f64],
        b: &mut [f64],
        scratch: &mut [f64],
    ) {
        (**self).drift_and_diffusion(t, x, a, b, scratch)
    }
    fn has_diffusion_derivative(&self) -> bool {
        (**self).has_diffusion_derivative()
    }
    #[inline]
    fn diffusion_mul_is_default(&self) -> bool {
        (**self).diffusion_mul_is_default()
    }
    #[inline]
    fn diffusion_is_state_independent(&self) -> bool {
        (**self).diffusion_is_state_independent()
    }
}

/// Marker for "no diffusion derivative supplied".
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDerivative;

/// An SDE built from closures `drift(t, x, out)` and `diffusion(t, x, out)`.
///
/// ```
/// use sde_core::{SdeFn, NoiseShape};
/// // Geometric Brownian motion dX = μX dt + σX dW.
/// let (mu, sigma) = (0.05, 0.2);
/// let gbm = SdeFn::new(
///     1,
///     NoiseShape::Scalar,
///     move |_t, x: &[f64], a: &mut [f64]| a[0] = mu * x[0],
///     move |_t, x: &[f64], b: &mut [f64]| b[0] = sigma * x[0],
/// )
/// .unwrap()
/// // Optional: ∂b/∂x · v, which lets Milstein use the exact correction.
/// .with_derivative(move |_t, _x: &[f64], v: &[f64], out: &mut [f64]| out[0] = sigma * v[0]);
/// assert!(sde_core::Sde::has_diffusion_derivative(&gbm));
/// ```
#[derive(Clone)]
pub struct SdeFn<A, B, D = NoDerivative> {
    dim: usize,
    noise: NoiseShape,
    drift: A,
    diffusion: B,
    derivative: D,
}

impl<A, B> SdeFn<A, B, NoDerivative>
where
    A: Fn(f64, &[f64], &mut [f64]) + Sync,
    B: Fn(f64, &[f64], &mut [f64]) + Sync,
{
    /// An SDE of dimension `dim` with the given noise shape; rejects `dim = 0` and a general or
    /// additive shape with `m = 0`.
    pub fn new(dim: usize, noise: NoiseShape, drift: A, diffusion: B) -> Result<Self, SdeError> {
        if dim == 0 {
            return Err(SdeError::invalid(
                "dim",
                dim,
                "the state dimension must be at least 1",
            ));
        }
        if noise.noise_dim(dim) == 0 {
            return Err(SdeError::invalid(
                "m",
                0,
                "the noise dimension must be at least 1",
            ));
        }
        Ok(SdeFn {
            dim,
            noise,
            drift,
            diffusion,
            derivative: NoDerivative,
        })
    }

    /// Supplies `out = Σ_k ∂_k b(t, x) v_k` (layout of the diffusion) for Milstein.
    pub fn with_derivative<D>(self, derivative: D) -> SdeFn<A, B, D>
    where
        D: Fn(f64, &[f64], &[f64], &mut [f64]) + Sync,
    {
        SdeFn {
            dim: self.dim,
            noise: self.noise,
            drift: self.drift,
            diffusion: self.diffusion,
            derivative,
        }
    }
}

/// What an [`SdeFn`] knows about its diffusion derivative.
pub trait DerivativeFn: Sync {
    const SUPPLIED: bool;
    fn eval(&self, t: f64, x: &[f64], v: &[f64], out: &mut [f64]);
}

impl DerivativeFn for NoDerivative {
    const SUPPLIED: bool = false;
    #[inline]
    fn eval(&self, _t: f64, _x: &[f64], _v: &[f64], _out: &mut [f64]) {}
}

impl<F: Fn(f64, &[f64], &[f64], &mut [f64]) + Sync> DerivativeFn for F {
    const SUPPLIED: bool = true;
    #[inline]
    fn eval(&self, t: f64, x: &[f64], v: &[f64], out: &mut [f64]) {
        self(t, x, v, out)
    }
}

impl<A, B, D> Sde for SdeFn<A, B, D>
where
    A: Fn(f64, &[f64], &mut [f64]) + Sync,
    B: Fn(f64, &[f64], &mut [f64]) + Sync,
    D: DerivativeFn,
{
    #[inline]
    fn dim(&self) -> usize {
        self.dim
    }
    #[inline]
    fn noise(&self) -> NoiseShape {
        self.noise
    }
    #[inline]
    fn drift(&self, t: f64, x: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        (self.drift)(t, x, out)
    }
    #[inline]
    fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        (self.diffusion)(t, x, out)
    }
    #[inline]
    fn diffusion_derivative(
        &self,
        t: f64,
        x: &[f64],
        v: &[f64],
        out: &mut [f64],
        _scratch: &mut [f64],
    ) -> bool {
        self.derivative.eval(t, x, v, out);
        D::SUPPLIED
    }
    fn has_diffusion_derivative(&self) -> bool {
        D::SUPPLIED
    }
    /// `SdeFn` never overrides [`Sde::diffusion_mul`].
    #[inline]
    fn diffusion_mul_is_default(&self) -> bool {
        true
    }
}
