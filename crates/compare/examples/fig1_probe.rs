use compare::figure1::*;
fn main() {
    let mut p = Figure1Params::default();
    let args: Vec<String> = std::env::args().collect();
    for a in &args[1..] {
        let (k, v) = a.split_once('=').unwrap();
        let f: f64 = v.parse().unwrap();
        match k {
            "x0" => p.x0 = f,
            "eta" => p.eta = f,
            "T" => p.horizon = f,
            "paths" => {
                p.paths = f as u64;
                p.quantile_paths = f as u64
            }
            "s1" => p.dsgd_sigma1 = f,
            "cs1" => p.dcsgd_sigma1 = f,
            "p" => p.dcsgd_keep_probability = f,
            "nu" => p.dsignsgd_nu = f,
            "scale" => p.dsignsgd_scale = f,
            "seta" => p.dsignsgd_eta = f,
            "c" => p.normalized_c = f,
            "sub" => p.substeps = f as usize,
            "d" => p.dim = f as usize,
            _ => panic!("{k}"),
        }
    }
    let t0 = std::time::Instant::now();
    let r = figure1(&p, &|_| {}).unwrap();
    println!("wall {:.2}s", t0.elapsed().as_secs_f64());
    for panel in &r.panels {
        let rep = &panel.report;
        let n = rep.discrete.times.len();
        let idx = [0, n / 10, n / 4, n / 2, n - 1];
        println!("{} | eta {} | {}", panel.title, panel.eta, panel.schedule);
        for (lab, t) in std::iter::once(("disc", &rep.discrete))
            .chain(rep.models.iter().map(|(_, t)| ("sde ", t)))
        {
            let b = &t.bands[0];
            let s: Vec<String> = idx
                .iter()
                .map(|&k| {
                    format!(
                        "t={:.1}: mean {:.3e} q50 {:.2e} q90 {:.2e}",
                        t.times[k], b.mean[k], b.quantiles[1][k], b.quantiles[2][k]
                    )
                })
                .collect();
            println!("  {lab} div={} | {}", t.diverged[n - 1], s.join(" | "));
        }
    }
}
