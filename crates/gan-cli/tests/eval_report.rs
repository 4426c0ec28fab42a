//! `gan-cli eval`, `train dcgan --eval-every` and `gan-cli report` end to end, and the report
//! opened in headless Chromium: every image and chart must load, with no script error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gan_data::{Dataset, ImageSource};

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn gan_cli(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gan-cli"))
        .args(args)
        .current_dir(cwd)
        .env("GAN_DATASETS", datasets())
        .env("GAN_CACHE", cwd.join("cache"))
        .output()
        .expect("gan-cli runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

fn fails_with(out: &Output, want: &str) {
    let (stdout, stderr) = text(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains(want), "stderr lacks {want:?}:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The Chromium binary, if installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// Loads `html` in headless Chromium with a probe that waits for the load event, then records
/// how many images there are, which failed to decode, and any error event; returns the probe's
/// line (its marker is assembled at run time so that the script's own text never matches).
fn browser_check(chromium: &Path, report: &Path, scratch: &Path) -> String {
    let html = std::fs::read_to_string(report).unwrap();
    let probe = r#"<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.alt) || e.type)), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0 || i.naturalHeight === 0).map(i => i.alt);
  const out = document.createElement('div');
  out.id = 'probe';
  out.textContent = ['CHECK', 'RESULT'].join('_') + ' images=' + imgs.length + ' broken=' + broken.length + ' [' + broken.join('|') + '] errors=' + window.__errors.length + ' [' + window.__errors.join('|') + '] END';
  document.body.appendChild(out);
});
</script></body>"#;
    let page = scratch.join("probe.html");
    std::fs::write(&page, html.replace("</body>", probe)).unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=10000",
            &format!("--user-data-dir={}", scratch.join("profile").display()),
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("CHECK_RESULT ").unwrap_or_else(|| {
        panic!(
            "no probe result in Chromium's DOM (exit {:?}); stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let end = dom[start..].find(" END").expect("probe line ends") + start;
    dom[start..end].to_string()
}

#[test]
fn train_with_eval_then_eval_and_report_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = gan_cli(
        &[
            "train",
            "dcgan",
            "--data",
            "mnist-mini",
            "--steps",
            "4",
            "--batch-size",
            "8",
            "--ngf",
            "8",
            "--ndf",
            "8",
            "--nz",
            "10",
            "--out",
            "run",
            "--sample-every",
            "2",
            "--eval-every",
            "2",
            "--eval-count",
            "60",
        ],
        d,
    );
    let stdout = ok(&out);
    assert!(stdout.contains("report in run/report.html"), "{stdout}");
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("eval at step 2 (60 samples vs 1000"),
        "{stderr}"
    );
    let run = d.join("run");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let evals: Vec<u64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("eval").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(evals, vec![2, 4]);

    // Score the run, with JSON.
    let out = gan_cli(
        &[
            "eval",
            "--run",
            "run",
            "--count",
            "50",
            "--json",
            "scores.json",
        ],
        d,
    );
    let table = ok(&out);
    assert!(table.contains("samples                   50"), "{table}");
    assert!(table.contains("FID"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("scores.json")).unwrap()).unwrap();
    assert_eq!(json["report"]["samples"], 50);
    assert_eq!(json["report"]["reference_samples"], 1000);
    assert!(json["report"]["fid"].as_f64().unwrap() > 0.0);
    let dc = &json["report"]["density_coverage"];
    assert!(dc["density"].as_f64().unwrap() >= 0.0, "{dc}");
    assert!(
        (0.0..=1.0).contains(&dc["coverage"].as_f64().unwrap()),
        "{dc}"
    );
    // No silent phase: each is announced on stderr (a bar on a terminal), timed in the JSON,
    // and the reported seconds cover all of them, sampling included.
    let (_, stderr) = text(&out);
    for phase in [
        "loading the mnist evaluator",
        // The statistics --eval-every computed, from the cache.
        "reading the mnist-mini test split statistics from ",
        "/cache/reference-mnist-mini-test-split-mnist-1000-",
        "sampling 50 images from run (latest)",
        "embedding the samples",
        "scoring (FID, KID, precision/recall, density/coverage)",
    ] {
        assert!(stderr.contains(phase), "no {phase:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("embedding the mnist-mini"), "{stderr}");
    let phases = json["phases"].as_array().unwrap();
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"sampling 50 images from run (latest)"),
        "{names:?}"
    );
    let sum: f64 = phases.iter().map(|p| p["seconds"].as_f64().unwrap()).sum();
    let seconds = json["report"]["seconds"].as_f64().unwrap();
    assert!(seconds >= sum, "reported {seconds} s, phases {sum} s");

    // Rebuild the report; then open it in Chromium.
    let out = gan_cli(&["report", "run"], d);
    assert!(ok(&out).contains("report.html"));
    let report = run.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    let images = html.matches("<img ").count();
    assert!(images >= 8, "{images} images in the report");
    let c = chromium().expect(
        "chromium is not installed: `cargo xtask test` installs it (apt-get install chromium)",
    );
    let line = browser_check(&c, &report, d);
    assert_eq!(
        line,
        format!("CHECK_RESULT images={images} broken=0 [] errors=0 []"),
        "Chromium: {line}"
    );
}

#[test]
fn eval_images_folder_real_split_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 200 real test digits as PNG files, scored like another framework's samples.
    let src = ImageSource::resolve(Some("mnist-mini"), &datasets()).unwrap();
    let test = src.load_test(28).unwrap();
    let idx: Vec<usize> = (0..test.len()).step_by(5).collect();
    let sub = test.subset(&idx);
    let t = candle_core::Tensor::from_slice(
        sub.data(),
        (sub.len(), 1, 28, 28),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    gan_models::grid::save_images(&t, &d.join("imgs"), 0).unwrap();
    let out = gan_cli(&["eval", "--images", "imgs", "--evaluator", "mnist"], d);
    let table = ok(&out);
    assert!(table.contains("samples                   200"), "{table}");
    assert!(table.contains("class coverage            10/10"), "{table}");

    let out = gan_cli(&["eval", "--real-split", "train", "--count", "500"], d);
    let table = ok(&out);
    assert!(table.contains("samples                   500"), "{table}");

    std::fs::create_dir(d.join("empty")).unwrap();
    fails_with(&gan_cli(&["eval", "--images", "empty"], d), "empty");
    fails_with(&gan_cli(&["eval", "--images", "nowhere"], d), "nowhere");
    fails_with(
        &gan_cli(&["eval", "--run", "nowhere"], d),
        "nowhere is not a run folder",
    );
    fails_with(
        &gan_cli(&["eval", "--images", "imgs", "--evaluator", "cifar"], d),
        "unknown evaluator \"cifar\"",
    );
    fails_with(
        &gan_cli(&["eval", "--images", "imgs", "--evaluator", "inception"], d),
        "needs its weights: pass --inception-weights PATH",
    );
    fails_with(
        &gan_cli(
            &[
                "eval",
                "--images",
                "imgs",
                "--evaluator",
                "inception",
                "--inception-weights",
                "nowhere/pt_inception.pth",
            ],
            d,
        ),
        "nowhere/pt_inception.pth: no such inception weights file",
    );
    std::fs::write(d.join("imgs/000003.png"), b"not a png").unwrap();
    fails_with(&gan_cli(&["eval", "--images", "imgs"], d), "000003.png");
    fails_with(
        &gan_cli(&["report", "nowhere"], d),
        "nowhere is not a run folder",
    );
}
