//! Euler–Maruyama: `X_{n+1} = X_n + a(t_n, X_n) h + b(t_n, X_n) ΔW_n`.
//! Strong order 1/2, weak order 1, every noise shape.

use crate::error::SdeError;
use crate::noise::NoiseShape;
use crate::problem::Sde;
use crate::rng::PathRng;
use crate::scheme::Scheme;

/// The Euler–Maruyama scheme.
#[derive(Clone, Copy, Debug, Default)]
pub struct EulerMaruyama;

/// Buffers of one Euler–Maruyama path.
pub struct EmWorkspace {
    a: Vec<f64>,
    bdw: Vec<f64>,
    b: Vec<f64>,
    scratch: Vec<f64>,
}

impl Scheme for EulerMaruyama {
    type Workspace = EmWorkspace;

    fn name(&self) -> &'static str {
        "euler_maruyama"
    }
    fn strong_order(&self) -> Option<f64> {
        Some(0.5)
    }
    fn weak_order(&self) -> f64 {
        1.0
    }
    fn check<S: Sde + ?Sized>(&self, _sde: &S) -> Result<(), SdeError> {
        Ok(())
    }
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> EmWorkspace {
        let d = sde.dim();
        EmWorkspace {
            a: vec![0.0; d],
            bdw: vec![0.0; d],
            b: vec![0.0; sde.noise().diffusion_len(d)],
            scratch: vec![0.0; sde.scratch_len()],
        }
    }
    #[inline]
    fn step<S: Sde + ?Sized>(
        &self,
        sde: &S,
        t: f64,
        h: f64,
        x: &mut [f64],
        dw: &[f64],
        _rng: &mut PathRng,
        ws: &mut EmWorkspace,
    ) {
        if sde.diffusion_mul_is_default() {
            match sde.noise() {
                NoiseShape::Diagonal => return step_fused::<S, true>(sde, t, h, x, dw, ws),
                NoiseShape::Scalar => return step_fused::<S, false>(sde, t, h, x, dw, ws),
                _ => {}
            }
        }
        step_mul(sde, t, h, x, dw, ws);
    }
}

/// Scalar (`DIAG = false`) or diagonal noise with the default [`Sde::diffusion_mul`]: the product
/// `b_i · dw_i` (diagonal) or `b_i · dw_0` (scalar) that `diffusion_mul` would compute is fused
/// into the update, the same numbers without a pass through `bdw`.
#[inline(always)]
fn step_fused<S: Sde + ?Sized, const DIAG: bool>(
    sde: &S,
    t: f64,
    h: f64,
    x: &mut [f64],
    dw: &[f64],
    ws: &mut EmWorkspace,
) {
    sde.drift(t, x, &mut ws.a, &mut ws.scratch);
    sde.diffusion(t, x, &mut ws.b, &mut ws.scratch);
    let (a, b) = (&ws.a, &ws.b);
    if DIAG {
        for (((xi, ai), bi), wi) in x.iter_mut().zip(a).zip(b).zip(dw) {
            *xi += ai * h + bi * wi;
        }
    } else {
        let w = dw[0];
        for ((xi, ai), bi) in x.iter_mut().zip(a).zip(b) {
            *xi += ai * h + bi * w;
        }
    }
}

/// Any noise through [`Sde::diffusion_mul`].
#[inline]
fn step_mul<S: Sde + ?Sized>(
    sde: &S,
    t: f64,
    h: f64,
    x: &mut [f64],
    dw: &[f64],
    ws: &mut EmWorkspace,
) {
    sde.drift(t, x, &mut ws.a, &mut ws.scratch);
    sde.diffusion_mul(t, x, dw, &mut ws.bdw, &mut ws.b, &mut ws.scratch);
    for ((xi, ai), gi) in x.iter_mut().zip(&ws.a).zip(&ws.bdw) {
        *xi += ai * h + gi;
    }
}
