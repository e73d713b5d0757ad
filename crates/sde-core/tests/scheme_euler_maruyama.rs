//! Euler–Maruyama's step (moved from the scheme's inline tests): the fused update gives the
//! same bits as the generic `diffusion_mul` path.

use sde_core::problem::SdeFn;
use sde_core::rng::derive_stream;
use sde_core::*;
use sde_core::{Gaussian, Increments};

/// Forwards to an inner problem but keeps the trait's default
/// `diffusion_mul_is_default() == false`, so Euler–Maruyama takes the `diffusion_mul` path.
struct Unfused<S>(S);

impl<S: Sde> Sde for Unfused<S> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn noise(&self) -> NoiseShape {
        self.0.noise()
    }
    fn drift(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        self.0.drift(t, x, out, scratch)
    }
    fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        self.0.diffusion(t, x, out, scratch)
    }
}

fn run<S: Sde>(sde: &S, x0: &[f64], steps: usize) -> Vec<f64> {
    let mut ws = EulerMaruyama.workspace(sde);
    let mut rng = derive_stream(9, 4);
    let mut dw = vec![0.0; sde.noise().noise_dim(sde.dim())];
    let mut x = x0.to_vec();
    let h = 0.013;
    for i in 0..steps {
        Gaussian.draw(&mut rng, h, &mut dw);
        EulerMaruyama.step(
            sde,
            &mut x,
            Step::new(i as f64 * h, h, &dw, &mut rng),
            &mut ws,
        );
    }
    x
}

#[test]
fn fused_update_gives_the_same_bits_as_diffusion_mul() {
    for noise in [NoiseShape::Diagonal, NoiseShape::Scalar] {
        let sde = SdeFn::new(
            3,
            noise,
            |t, x: &[f64], a: &mut [f64]| {
                for (ai, xi) in a.iter_mut().zip(x) {
                    *ai = -xi * xi * xi + t.sin();
                }
            },
            |t, x: &[f64], b: &mut [f64]| {
                for (bi, xi) in b.iter_mut().zip(x) {
                    *bi = 0.3 + 0.1 * xi.cos() + t;
                }
            },
        )
        .unwrap();
        assert!(sde.diffusion_mul_is_default());
        assert!(!Unfused(&sde).diffusion_mul_is_default());
        let x0 = [0.7, -1.1, 0.2];
        let fused = run(&sde, &x0, 500);
        let unfused = run(&Unfused(&sde), &x0, 500);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fused), bits(&unfused), "{noise}");
    }
}
