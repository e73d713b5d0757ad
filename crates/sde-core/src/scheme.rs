//! Schemes: one step of a one-step method, with declared orders and supported noise shapes.
//!
//! A scheme is a pure function of `(problem, t, h, x, ΔW)` plus a workspace it owns; adding one
//! is one file under `schemes/` implementing [`Scheme`]. A scheme rejects, at construction of a
//! [`crate::Solver`], any problem whose noise it cannot integrate to its declared order, so a
//! mismatch is an error, never a wrong number.

use crate::error::SdeError;
use crate::noise::NoiseShape;
use crate::problem::Sde;
use crate::rng::PathRng;

/// What a scheme declares about itself: its name (used in errors and results) and its orders.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SchemeInfo {
    pub name: &'static str,
    /// Strong (pathwise, mean-square) order with exact Gaussian increments; `None` when the
    /// scheme is not meant as a strong approximation.
    pub strong_order: Option<f64>,
    /// Weak order (error of expectations of smooth functionals).
    pub weak_order: f64,
}

/// Everything one step needs besides the problem, the state and the workspace: the step from
/// `t` to `t + h`, its Brownian increment `dw` (length `m`) and the path's stream `rng`, for
/// schemes that draw auxiliary random variables beyond `dw`.
pub struct Step<'a> {
    pub t: f64,
    pub h: f64,
    pub dw: &'a [f64],
    pub rng: &'a mut PathRng,
}

impl<'a> Step<'a> {
    pub fn new(t: f64, h: f64, dw: &'a [f64], rng: &'a mut PathRng) -> Self {
        Step { t, h, dw, rng }
    }
}

/// One step of a fixed-step scheme for Itô SDEs.
pub trait Scheme: Sync + Send + Clone {
    /// Per-path buffers, made once per path chunk and reused for every step.
    type Workspace: Send;
    /// The declared name and orders (the test kit checks measured orders against them).
    fn info(&self) -> SchemeInfo;
    /// Why the scheme cannot integrate noise of this shape to its declared orders, if it cannot;
    /// [`crate::Solver::new`] turns the reason into an error naming the scheme and the noise.
    fn supports(&self, _noise: NoiseShape) -> Result<(), &'static str> {
        Ok(())
    }
    /// Checks the scheme's own parameters.
    fn validate(&self) -> Result<(), SdeError> {
        Ok(())
    }
    /// Buffers for one path of `sde` ([`StepBuffers::new`] when the common ones serve).
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> Self::Workspace;
    /// Advances `x` by one step.
    fn step<S: Sde + ?Sized>(
        &self,
        sde: &S,
        x: &mut [f64],
        step: Step<'_>,
        ws: &mut Self::Workspace,
    );

    fn name(&self) -> &'static str {
        self.info().name
    }
    fn strong_order(&self) -> Option<f64> {
        self.info().strong_order
    }
    fn weak_order(&self) -> f64 {
        self.info().weak_order
    }
    /// Whether the scheme can integrate this problem to its declared orders: its parameters
    /// are valid and it supports the problem's noise.
    fn check<S: Sde + ?Sized>(&self, sde: &S) -> Result<(), SdeError> {
        self.validate()?;
        let noise = sde.noise();
        self.supports(noise)
            .map_err(|reason| SdeError::UnsupportedNoise {
                scheme: self.name(),
                noise: noise.to_string(),
                reason,
            })
    }
}

/// The buffers of one evaluation of the coefficients at a state, which most schemes need:
/// the drift `a` (`d`), the diffusion `b` (the shape's layout), a product `b · v` (`d`) and the
/// problem's scratch space.
pub struct StepBuffers {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub bdw: Vec<f64>,
    pub scratch: Vec<f64>,
}

impl StepBuffers {
    pub fn new<S: Sde + ?Sized>(sde: &S) -> Self {
        let d = sde.dim();
        StepBuffers {
            a: vec![0.0; d],
            b: vec![0.0; sde.noise().diffusion_len(d)],
            bdw: vec![0.0; d],
            scratch: vec![0.0; sde.scratch_len()],
        }
    }

    /// The Euler–Maruyama step `x += a(t, x) h + b(t, x) dw` through [`Sde::diffusion_mul`], for
    /// any noise shape (Euler–Maruyama itself, and Milstein on additive noise, where its
    /// correction vanishes).
    #[inline]
    pub fn euler_step<S: Sde + ?Sized>(
        &mut self,
        sde: &S,
        x: &mut [f64],
        t: f64,
        h: f64,
        dw: &[f64],
    ) {
        sde.drift(t, x, &mut self.a, &mut self.scratch);
        sde.diffusion_mul(t, x, dw, &mut self.bdw, &mut self.b, &mut self.scratch);
        for ((xi, ai), gi) in x.iter_mut().zip(&self.a).zip(&self.bdw) {
            *xi += ai * h + gi;
        }
    }
}

/// Code generic over the scheme, given the concrete scheme chosen at run time by
/// [`SchemeKind::visit`] (so the hot loop stays monomorphic).
pub trait SchemeVisitor {
    type Output;
    fn visit<Sch: Scheme>(self, scheme: Sch) -> Self::Output;
}
