//! Streaming statistics and order fits.
//!
//! [`Welford`] accumulates count, mean and the sum of squared deviations in one pass with
//! memory independent of the number of samples; two accumulators merge exactly (Chan et al.),
//! so chunks of paths computed on any thread fold into the same bits when merged in a fixed
//! order. [`fit_order`] fits `log err = α log h + c` by least squares and gives α a 95% interval
//! from Student's t with `n − 2` degrees of freedom.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided 95% quantile of the standard normal.
pub const Z95: f64 = 1.959_963_984_540_054;

/// One-pass mean and variance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Welford {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
}

impl Welford {
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Folds `other` into `self`; the result is that of pushing both sample sets.
    #[inline]
    pub fn merge(&mut self, other: &Welford) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n = (self.count + other.count) as f64;
        let (na, nb) = (self.count as f64, other.count as f64);
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.count += other.count;
    }

    /// Unbiased sample variance (NaN with fewer than two samples).
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            f64::NAN
        } else {
            self.m2 / (self.count - 1) as f64
        }
    }

    /// Standard error of the mean.
    pub fn std_err(&self) -> f64 {
        (self.variance() / self.count as f64).sqrt()
    }

    /// Mean, variance, standard error and 95% half-width in one value.
    pub fn summary(&self) -> Summary {
        let se = self.std_err();
        Summary {
            count: self.count,
            mean: if self.count == 0 { f64::NAN } else { self.mean },
            variance: self.variance(),
            std_err: se,
            ci95: Z95 * se,
        }
    }
}

/// Summary of one observable at one save time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub variance: f64,
    pub std_err: f64,
    /// Half-width of the normal-approximation 95% confidence interval of the mean.
    pub ci95: f64,
}

/// Two-sided `level` quantile of Student's t with `df` degrees of freedom
/// (e.g. `level = 0.95` gives the 97.5% point).
pub fn t_quantile(level: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(0.5 + level / 2.0),
        Err(_) => f64::NAN,
    }
}

/// A least-squares line `y = slope · x + intercept` with the 95% interval of its slope.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LineFit {
    pub slope: f64,
    pub intercept: f64,
    pub slope_std_err: f64,
    /// 95% interval of the slope, from Student's t with `n − 2` degrees of freedom.
    pub slope_ci95: (f64, f64),
    pub points: usize,
}

impl LineFit {
    pub fn contains(&self, slope: f64) -> bool {
        self.slope_ci95.0 <= slope && slope <= self.slope_ci95.1
    }
}

/// Ordinary least squares of `y` on `x`. Needs at least three points for an interval (with
/// two, the interval is infinite); points with non-finite coordinates are rejected.
pub fn fit_line(x: &[f64], y: &[f64]) -> Option<LineFit> {
    let n = x.len();
    if n != y.len() || n < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let mx = x.iter().sum::<f64>() / nf;
    let my = y.iter().sum::<f64>() / nf;
    let sxx: f64 = x.iter().map(|xi| (xi - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = x.iter().zip(y).map(|(xi, yi)| (xi - mx) * (yi - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let (se, half) = if n > 2 {
        let rss: f64 = x
            .iter()
            .zip(y)
            .map(|(xi, yi)| (yi - intercept - slope * xi).powi(2))
            .sum();
        let se = (rss / (nf - 2.0) / sxx).sqrt();
        (se, t_quantile(0.95, nf - 2.0) * se)
    } else {
        (f64::INFINITY, f64::INFINITY)
    };
    Some(LineFit {
        slope,
        intercept,
        slope_std_err: se,
        slope_ci95: (slope - half, slope + half),
        points: n,
    })
}

/// Order of convergence: the slope of `log err` against `log h`. `None` if any error is not
/// strictly positive and finite (its logarithm does not exist).
pub fn fit_order(h: &[f64], err: &[f64]) -> Option<LineFit> {
    if h.iter().chain(err).any(|v| !(*v > 0.0) || !v.is_finite()) {
        return None;
    }
    let lx: Vec<f64> = h.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = err.iter().map(|v| v.ln()).collect();
    fit_line(&lx, &ly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_merge_equals_one_pass() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 37) % 101) as f64 * 0.1 - 3.0)
            .collect();
        let mut all = Welford::default();
        xs.iter().for_each(|&x| all.push(x));
        let mut a = Welford::default();
        let mut b = Welford::default();
        xs[..313].iter().for_each(|&x| a.push(x));
        xs[313..].iter().for_each(|&x| b.push(x));
        a.merge(&b);
        let mean = xs.iter().sum::<f64>() / 1000.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 999.0;
        assert!((all.mean - mean).abs() < 1e-12 && (a.mean - mean).abs() < 1e-12);
        assert!((all.variance() - var).abs() < 1e-10 && (a.variance() - var).abs() < 1e-10);
    }

    #[test]
    fn line_fit_recovers_known_slope_and_interval() {
        // Exact line: zero residuals, zero-width interval.
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [3.0, 5.0, 7.0, 9.0];
        let f = fit_line(&x, &y).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.intercept - 1.0).abs() < 1e-12);
        assert!(f.slope_std_err < 1e-12);
        // A textbook case: residuals ±0.1 alternate; se = sqrt(rss/(n-2)/sxx).
        let y2 = [3.1, 4.9, 7.1, 8.9];
        let f2 = fit_line(&x, &y2).unwrap();
        let rss: f64 = x
            .iter()
            .zip(&y2)
            .map(|(a, b)| (b - f2.intercept - f2.slope * a).powi(2))
            .sum();
        let se = (rss / 2.0 / 5.0).sqrt();
        assert!((f2.slope_std_err - se).abs() < 1e-12);
        // t_{0.975, 2} = 4.302653
        assert!((t_quantile(0.95, 2.0) - 4.302_652_729_9).abs() < 1e-6);
        assert!((f2.slope_ci95.1 - f2.slope - 4.302_652_729_9 * se).abs() < 1e-6);
        assert!(fit_order(&[0.1, 0.05], &[0.0, 1.0]).is_none());
    }
}
