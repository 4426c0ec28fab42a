//! Faults of the reliability issue, end to end through the binary: outputs never overwrite each
//! other or their inputs and follow their extension (item 7), and a run made with relative data
//! paths works from any working directory (item 4).

#[allow(dead_code)] // not every test file uses every helper
mod common;

use std::path::Path;
use std::process::Output;

use common::{gan_cli, ok};

/// Asserts exit code 2, no panic, and each of `needles` in stderr.
fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
}

/// Gray `side`-pixel images named `names` in `dir` (format from the extension), each distinct.
fn write_images(dir: &Path, names: &[&str], side: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, name) in names.iter().enumerate() {
        let i = i as u32;
        let img = image::GrayImage::from_fn(side, side, |x, y| {
            let on = x >= 2 + i % 5 && x < 4 + i % 5 && (3..side - 3).contains(&y);
            image::Luma([if on { 240 } else { 0 }])
        });
        img.save_with_format(dir.join(name), image::ImageFormat::from_path(name).unwrap())
            .unwrap();
    }
}

fn config(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const CYCLEGAN_TINY: &[&str] = &[
    "--channels",
    "1",
    "--no-flip",
    "--ngf",
    "4",
    "--ndf",
    "4",
    "--n-blocks",
    "1",
    "--n-layers",
    "1",
    "--epochs",
    "1",
    "--epochs-decay",
    "1",
    "--crop-size",
    "12",
    "--load-size",
    "12",
];

/// Item 7 for translate, and item 4 for `--dataroot`: a CycleGAN run made with a relative
/// `--dataroot` stores it absolute and resumes from another directory; translate refuses clashing
/// output names (listing them) and its own input folder, writes one file per input, and counts
/// the files written.
#[test]
fn cyclegan_dataroot_and_translate_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let work = d.join("work");
    for s in ["trainA", "trainB", "testA", "testB"] {
        write_images(&work.join("data").join(s), &["x0.png", "x1.png"], 12);
    }
    let mut args = vec!["train", "cyclegan", "--dataroot", "data", "--out", "run"];
    args.extend_from_slice(CYCLEGAN_TINY);
    ok(&gan_cli(&args, &work));
    let root = std::fs::canonicalize(work.join("data")).unwrap();
    assert_eq!(
        config(&work.join("run"))["data"]["dataroot"],
        root.to_str().unwrap()
    );
    // Resume from a sibling folder.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let stdout = ok(&gan_cli(
        &[
            "train",
            "cyclegan",
            "--resume",
            "../work/run",
            "--steps",
            "5",
        ],
        &other,
    ));
    assert!(stdout.contains("step 5:"), "{stdout}");

    // photo.png, photo.jpg and photo.PNG would all become photo.png: refused, all three named,
    // nothing written.
    let clash = work.join("clash");
    write_images(
        &clash,
        &["photo.png", "photo.jpg", "photo.PNG", "other.png"],
        12,
    );
    let run = ["translate", "--run", "run", "--direction", "a2b"];
    let out = gan_cli(
        &[&run[..], &["--input", "clash", "--out", "t1"]].concat(),
        &work,
    );
    fails_with(&out, &["photo.png", "photo.jpg", "photo.PNG", "t1"]);
    assert!(!work.join("t1").exists());

    // --out is --input (also spelled differently): refused, the inputs untouched.
    let input = work.join("in");
    write_images(&input, &["a.png", "b.jpg"], 12);
    let before: Vec<Vec<u8>> = ["a.png", "b.jpg"]
        .map(|f| std::fs::read(input.join(f)).unwrap())
        .to_vec();
    for out_arg in ["in", "./in/", "../work/in"] {
        let out = gan_cli(
            &[&run[..], &["--input", "in", "--out", out_arg]].concat(),
            &work,
        );
        fails_with(&out, &["input folder"]);
    }
    assert_eq!(files_in(&input), ["a.png", "b.jpg"]);
    for (f, bytes) in ["a.png", "b.jpg"].iter().zip(&before) {
        assert_eq!(&std::fs::read(input.join(f)).unwrap(), bytes, "{f} changed");
    }

    // --out with a file extension: translate writes a folder.
    let out = gan_cli(
        &[&run[..], &["--input", "in", "--out", "t.png"]].concat(),
        &work,
    );
    fails_with(&out, &["t.png", "folder"]);
    assert!(!work.join("t.png").exists());

    // Distinct names: one PNG per input, and the count is the count written.
    let stdout = ok(&gan_cli(
        &[&run[..], &["--input", "in", "--out", "t2"]].concat(),
        &work,
    ));
    assert!(stdout.contains("translated 2 images"), "{stdout}");
    assert_eq!(files_in(&work.join("t2")), ["a.png", "b.png"]);
    for f in ["a.png", "b.png"] {
        assert_eq!(
            image::image_dimensions(work.join("t2").join(f)).unwrap(),
            (12, 12)
        );
    }
}

/// Item 4 for `--data`: a DCGAN run made with a relative image folder stores it absolute and
/// resumes from another directory; a run written before (relative path, as typed) still resumes
/// from where it was made, and from elsewhere is found from the folders above the run or refused
/// with the path and what to do.
#[test]
fn relative_data_folder_resumes_from_another_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let work = d.join("work");
    let names: Vec<String> = (0..8).map(|i| format!("img{i}.png")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    write_images(&work.join("imgs"), &names, 28);
    let tiny = [
        "--batch-size",
        "4",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--nz",
        "10",
        "--channels",
        "1",
    ];
    let mut args = vec![
        "train", "dcgan", "--data", "imgs", "--steps", "2", "--out", "run",
    ];
    args.extend_from_slice(&tiny);
    ok(&gan_cli(&args, &work));
    let run = work.join("run");
    let imgs = std::fs::canonicalize(work.join("imgs")).unwrap();
    let cfg = config(&run);
    assert_eq!(cfg["data"]["path"], imgs.to_str().unwrap());
    assert_eq!(cfg["data"]["source"], "imgs");

    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let stdout = ok(&gan_cli(
        &["train", "dcgan", "--resume", "../work/run", "--steps", "3"],
        &other,
    ));
    assert!(stdout.contains("step 3:"), "{stdout}");
    // WGAN stores and finds its data the same way.
    let mut args = vec![
        "train",
        "wgan",
        "--data",
        "imgs",
        "--steps",
        "1",
        "--n-critic",
        "1",
        "--no-burst",
        "--out",
        "wrun",
    ];
    args.extend_from_slice(&tiny);
    ok(&gan_cli(&args, &work));
    assert_eq!(
        config(&work.join("wrun"))["data"]["path"],
        imgs.to_str().unwrap()
    );
    let stdout = ok(&gan_cli(
        &["train", "wgan", "--resume", "../work/wrun", "--steps", "2"],
        &other,
    ));
    assert!(stdout.contains("step 2:"), "{stdout}");
    // Sampling needs no data, and works from there too.
    ok(&gan_cli(
        &[
            "sample",
            "--run",
            "../work/run",
            "--count",
            "4",
            "--out",
            "s.png",
        ],
        &other,
    ));
    assert!(other.join("s.png").is_file());

    // A run as written before: the path as typed, relative to where it was made.
    let mut old = config(&run);
    old["data"]["path"] = "imgs".into();
    std::fs::write(run.join("config.json"), old.to_string()).unwrap();
    let stdout = ok(&gan_cli(
        &["train", "dcgan", "--resume", "run", "--steps", "4"],
        &work,
    ));
    assert!(stdout.contains("step 4:"), "{stdout}");
    let stdout = ok(&gan_cli(
        &["train", "dcgan", "--resume", "../work/run", "--steps", "5"],
        &other,
    ));
    assert!(stdout.contains("step 5:"), "{stdout}");
    old["data"]["path"] = "gone".into();
    std::fs::write(run.join("config.json"), old.to_string()).unwrap();
    let out = gan_cli(
        &["train", "dcgan", "--resume", "../work/run", "--steps", "6"],
        &other,
    );
    fails_with(&out, &["config.json", "gone", "created in"]);
}

/// Item 7 for sample and interpolate: the output's format follows its extension, or the command
/// refuses naming the path and the extension expected, writing nothing.
#[test]
fn outputs_follow_their_extension() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&gan_cli(
        &[
            "train",
            "toy",
            "--dist",
            "ring8",
            "--steps",
            "2",
            "--width",
            "8",
            "--batch-size",
            "16",
            "--out",
            "toy",
        ],
        d,
    ));
    let out = gan_cli(
        &["sample", "--run", "toy", "--count", "5", "--out", "x.png"],
        d,
    );
    fails_with(&out, &["x.png", ".csv"]);
    assert!(!d.join("x.png").exists());
    let out = gan_cli(
        &["sample", "--run", "toy", "--count", "5", "--out", "pts"],
        d,
    );
    fails_with(&out, &["pts", ".csv"]);
    assert!(!d.join("pts").exists());
    ok(&gan_cli(
        &["sample", "--run", "toy", "--count", "5", "--out", "pts.CSV"],
        d,
    ));
    let text = std::fs::read_to_string(d.join("pts.CSV")).unwrap();
    assert_eq!(text.lines().next(), Some("x,y"));
    assert_eq!(text.lines().count(), 6);

    ok(&gan_cli(
        &[
            "train",
            "dcgan",
            "--steps",
            "1",
            "--batch-size",
            "8",
            "--ngf",
            "8",
            "--ndf",
            "8",
            "--nz",
            "10",
            "--out",
            "img",
        ],
        d,
    ));
    for bad in ["s.csv", "s.jpg"] {
        let out = gan_cli(&["sample", "--run", "img", "--count", "4", "--out", bad], d);
        fails_with(&out, &[bad, ".png", "folder"]);
        assert!(!d.join(bad).exists());
    }
    ok(&gan_cli(
        &[
            "sample", "--run", "img", "--count", "4", "--out", "grid.PNG",
        ],
        d,
    ));
    assert!(d.join("grid.PNG").is_file());
    ok(&gan_cli(
        &["sample", "--run", "img", "--count", "2", "--out", "singles"],
        d,
    ));
    assert_eq!(files_in(&d.join("singles")), ["000000.png", "000001.png"]);
    for bad in ["walk.csv", "walk", "singles"] {
        let out = gan_cli(
            &[
                "interpolate",
                "--run",
                "img",
                "--steps",
                "3",
                "--rows",
                "1",
                "--out",
                bad,
            ],
            d,
        );
        fails_with(&out, &[bad, ".png"]);
    }
    assert!(!d.join("walk").exists() && !d.join("walk.csv").exists());
    assert_eq!(files_in(&d.join("singles")), ["000000.png", "000001.png"]);
}

/// Without --channels, an image folder trains with the channels its images are stored in:
/// grayscale PNGs give 1, a colour one among them gives 3; --channels still decides when given.
#[test]
fn channels_default_to_what_the_images_are() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names: Vec<String> = (0..8).map(|i| format!("img{i}.png")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    write_images(&d.join("gray"), &names, 28);
    write_images(&d.join("colour"), &names, 28);
    image::RgbImage::from_pixel(28, 28, image::Rgb([200, 10, 10]))
        .save(d.join("colour/red.png"))
        .unwrap();
    let tiny = [
        "--steps",
        "1",
        "--batch-size",
        "4",
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--nz",
        "4",
    ];
    for (data, extra, want) in [
        ("gray", None, 1),
        ("colour", None, 3),
        ("gray", Some("3"), 3),
    ] {
        let out = format!("run-{data}-{want}");
        let mut args = vec!["train", "dcgan", "--data", data, "--out", &out];
        args.extend_from_slice(&tiny);
        if let Some(c) = extra {
            args.extend(["--channels", c]);
        }
        ok(&gan_cli(&args, d));
        assert_eq!(config(&d.join(&out))["dcgan"]["channels"], want, "{args:?}");
    }
}
