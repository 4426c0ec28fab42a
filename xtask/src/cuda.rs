//! `cargo xtask build-cuda`: builds `gan-cli` with `--features cuda` on a machine without a GPU
//! or a CUDA toolkit, so that the binary can be carried to a GPU machine.
//!
//! 1. nvcc, the CUDA headers and the libraries candle links (cuBLAS, cuBLASLt, cuRAND, NVRTC,
//!    the runtime) come from PyPI, pinned to CUDA 13.0, into a Python virtual environment in
//!    the toolkit folder (`target/cuda-toolkit` unless `--toolkit`); nothing is installed
//!    twice. CUDA 13.0 because the GPU machines run driver 580 (CUDA 13.0): a newer nvcc
//!    writes PTX that driver cannot load.
//! 2. candle-core links cudarc dynamically, so the link needs `libcuda.so`, which only comes
//!    with the NVIDIA driver. A stand-in is compiled here: a shared library with soname
//!    `libcuda.so.1` that defines every driver function cudarc declares (read from cudarc's
//!    own source, found through `cargo metadata`), each returning `CUDA_ERROR_NO_DEVICE`. At
//!    run time the real driver's `libcuda.so.1` is loaded in its place.
//! 3. `cargo build --release -p gan-cli --features cuda` into `target/cuda` (its own target
//!    folder, so the CPU build is not rebuilt), then two checks with the stand-in driver: the
//!    binary trains one step on the CPU, and `--device cuda` exits 2 with a clear message.
//!
//! `--check` only runs `cargo check -p gan-cli --features cuda` (CI: the CUDA build cannot
//! break silently; it needs nvcc, for candle-kernels' build script, but no link).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

/// The PyPI packages of CUDA 13.0 that compiling needs (nvcc, its front end, NVVM, the
/// runtime's and CCCL's headers).
const COMPILE_PACKAGES: &[&str] = &[
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cccl==13.0.85",
];

/// The libraries candle-core and cudarc link, besides the driver.
const LINK_PACKAGES: &[&str] = &[
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.0.2.14",
    "nvidia-curand==10.4.0.35",
];

/// The `-l` names cudarc and candle-kernels ask for, besides `cuda` (the stand-in).
const LINKED_LIBS: &[&str] = &["cublas", "cublasLt", "curand", "nvrtc", "cudart"];

/// `CUDA_ERROR_NO_DEVICE`: what every function of the stand-in driver returns.
const NO_DEVICE: i32 = 100;

/// Flags of `cargo xtask build-cuda`.
#[derive(clap::Args, Debug)]
pub struct BuildCudaArgs {
    /// Compute capability the kernels are compiled for (90: H100 and H200).
    #[arg(long, default_value_t = 90)]
    compute_cap: u32,
    /// Where the CUDA toolkit from PyPI goes (created when missing; default
    /// `target/cuda-toolkit`).
    #[arg(long)]
    toolkit: Option<PathBuf>,
    /// Only `cargo check -p gan-cli --features cuda` (what CI runs): no libraries, no link.
    #[arg(long)]
    check: bool,
}

impl BuildCudaArgs {
    /// `--check` with the defaults: what CI runs.
    pub fn check_only() -> Self {
        Self {
            compute_cap: 90,
            toolkit: None,
            check: true,
        }
    }
}

pub fn run(root: &Path, args: BuildCudaArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let toolkit = args
        .toolkit
        .clone()
        .unwrap_or_else(|| root.join("target/cuda-toolkit"));
    let packages: Vec<&str> = if args.check {
        COMPILE_PACKAGES.to_vec()
    } else {
        COMPILE_PACKAGES
            .iter()
            .chain(LINK_PACKAGES)
            .copied()
            .collect()
    };
    let cuda = install_toolkit(&toolkit, &packages)?;
    let target = root.join("target/cuda");
    let mut cargo = cargo_command();
    cargo
        .current_dir(root)
        .env("PATH", prepend_path(&cuda.join("bin"))?)
        .env("CUDA_ROOT", &cuda)
        .env("CUDA_PATH", &cuda)
        .env("CUDA_COMPUTE_CAP", args.compute_cap.to_string())
        // cudarc picks its bindings from `nvcc --version`; say it outright.
        .env("CUDARC_CUDA_VERSION", "13000")
        .arg(if args.check { "check" } else { "build" })
        .args(["-p", "gan-cli", "--features", "cuda", "--target-dir"])
        .arg(&target);
    if args.check {
        run_cmd(&mut cargo, "cargo check --features cuda")?;
        println!(
            "cargo check -p gan-cli --features cuda passed in {:.0} s",
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let link = toolkit.join("link");
    make_link_dir(root, &cuda, &link)?;
    let mut library_path = link.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LIBRARY_PATH") {
        library_path.push(":");
        library_path.push(old);
    }
    cargo.arg("--release").env("LIBRARY_PATH", library_path);
    run_cmd(&mut cargo, "cargo build --release --features cuda")?;
    let bin = target.join("release/gan-cli");
    smoke_test(&bin, &cuda, &link)?;
    let carry = pack_for_device(root, &bin)?;
    let mib = std::fs::metadata(&carry)?.len() as f64 / (1024.0 * 1024.0);
    println!(
        "for the GPU machine: {} ({mib:.0} MiB) holds this gan-cli and xtask, stripped; carry \
         it and run `tar xzf {} && target/release/xtask gpu-check` in the repository's root",
        carry.display(),
        CARRY
    );
    println!(
        "built {} in {:.0} s (compute capability {}).\n\
         On the GPU machine its CUDA libraries must be on LD_LIBRARY_PATH, for example those of \
         its PyTorch:\n  export LD_LIBRARY_PATH=$(python3 -c 'import nvidia, os; \
         print(os.path.join(nvidia.__path__[0], \"cu13/lib\"))'):$LD_LIBRARY_PATH\n\
         (`xtask gpu-check` sets this itself). The stand-in driver in {} is for linking and \
         for these checks only: never put it on the GPU machine's LD_LIBRARY_PATH.",
        bin.display(),
        start.elapsed().as_secs_f64(),
        args.compute_cap,
        link.display()
    );
    Ok(())
}

/// Installs `packages` into a virtual environment in `dir` unless the same list is already
/// there; returns the toolkit folder (`.../site-packages/nvidia/cu13`: bin/nvcc, include, lib).
pub fn install_toolkit(dir: &Path, packages: &[&str]) -> anyhow::Result<PathBuf> {
    let venv = dir.join("venv");
    let stamp = dir.join("installed.txt");
    let have = std::fs::read_to_string(&stamp).unwrap_or_default();
    let have_all = packages.iter().all(|p| have.lines().any(|l| l == *p));
    if !have_all {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if !venv.join("bin/pip").is_file() {
            run_cmd(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv (the CUDA toolkit comes from PyPI)",
            )?;
        }
        eprintln!("build-cuda: pip install {}", packages.join(" "));
        run_cmd(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(packages),
            "pip install of the CUDA toolkit",
        )?;
        let mut all: Vec<&str> = have.lines().filter(|l| !l.is_empty()).collect();
        all.extend(packages.iter().filter(|p| !have.lines().any(|l| l == **p)));
        std::fs::write(&stamp, all.join("\n") + "\n")?;
    } else {
        eprintln!(
            "build-cuda: the CUDA toolkit in {} is complete",
            dir.display()
        );
    }
    let lib = venv.join("lib");
    for entry in std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let cuda = entry?.path().join("site-packages/nvidia/cu13");
        if cuda.join("bin/nvcc").is_file() {
            return Ok(cuda);
        }
    }
    bail!(
        "no nvidia/cu13/bin/nvcc under {} after installing {}",
        lib.display(),
        packages.join(" ")
    )
}

/// Fills `link` with what the linker looks for: `libNAME.so` links to the PyPI libraries
/// (which ship only `libNAME.so.MAJOR`) and the stand-in `libcuda.so` (also as
/// `libcuda.so.1`, for the checks here).
fn make_link_dir(root: &Path, cuda: &Path, link: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(link)?;
    let lib = cuda.join("lib");
    for name in LINKED_LIBS {
        let prefix = format!("lib{name}.so.");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect();
        // libcublas.so.13 before libcublas.so.13.0.2.14: the soname the loader will ask for.
        found.sort_by_key(|p| p.as_os_str().len());
        let Some(target) = found.first() else {
            bail!("no {prefix}* in {}", lib.display());
        };
        replace_symlink(target, &link.join(format!("lib{name}.so")))?;
    }
    let symbols = driver_symbols(root)?;
    let c = link.join("libcuda-stand-in.c");
    let mut src = format!(
        "/* Link-time stand-in for the NVIDIA driver (libcuda.so.1), written by `cargo xtask \
         build-cuda`.\n   Every function returns CUDA_ERROR_NO_DEVICE ({NO_DEVICE}); the real \
         driver replaces this library at run time. */\n"
    );
    for s in &symbols {
        src.push_str(&format!("int {s}(void) {{ return {NO_DEVICE}; }}\n"));
    }
    std::fs::write(&c, src)?;
    let so = link.join("libcuda.so");
    run_cmd(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wl,-soname,libcuda.so.1", "-o"])
            .arg(&so)
            .arg(&c),
        "cc (the stand-in libcuda)",
    )?;
    replace_symlink(Path::new("libcuda.so"), &link.join("libcuda.so.1"))?;
    eprintln!(
        "build-cuda: stand-in driver with {} functions in {}",
        symbols.len(),
        so.display()
    );
    Ok(())
}

/// Cargo as the one running us (`cargo xtask` sets `CARGO` and rustup's toolchain), else the
/// `cargo` on the PATH: never the absolute path of the cargo that built this binary, whose
/// `rustc` would be rustup's proxy without a toolchain chosen, so that a dependency's own
/// `rust-toolchain` file (macro_rules_attribute has one) would pick another toolchain.
fn cargo_command() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn replace_symlink(target: &Path, at: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(target, at)
        .with_context(|| format!("cannot link {} to {}", at.display(), target.display()))
}

/// The driver functions cudarc declares (`pub unsafe fn cu...(` in `src/driver/sys/mod.rs`),
/// from the cudarc that the CUDA build resolves to.
fn driver_symbols(root: &Path) -> anyhow::Result<Vec<String>> {
    let out = cargo_command()
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--features",
            "gan-cli/cuda",
        ])
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "cudarc")
        .and_then(|p| p["manifest_path"].as_str())
        .context("cargo metadata lists no cudarc package for --features gan-cli/cuda")?;
    let sys = Path::new(manifest)
        .parent()
        .context("cudarc's manifest path")?
        .join("src/driver/sys/mod.rs");
    let text =
        std::fs::read_to_string(&sys).with_context(|| format!("reading {}", sys.display()))?;
    let symbols = declared_functions(&text, "cu");
    if symbols.len() < 100 {
        bail!(
            "only {} driver functions found in {}: has cudarc changed its layout?",
            symbols.len(),
            sys.display()
        );
    }
    Ok(symbols)
}

/// The names of the functions (`fn NAME(`) declared in Rust source `text` whose name starts
/// with `prefix`, sorted and without duplicates.
fn declared_functions(text: &str, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split("fn ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (name.starts_with(prefix) && rest[name.len()..].starts_with('(')).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The built binary, run here against the stand-in driver: one CPU training step works, and
/// `--device cuda` is refused with exit code 2 and a message that names the device.
fn smoke_test(bin: &Path, cuda: &Path, link: &Path) -> anyhow::Result<()> {
    let dir = bin.with_file_name("smoke-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let ld = format!("{}:{}", link.display(), cuda.join("lib").display());
    let cpu = Command::new(bin)
        .env("LD_LIBRARY_PATH", &ld)
        .current_dir(&dir)
        .args([
            "train", "dcgan", "--steps", "1", "--ngf", "8", "--ndf", "8", "--out", "cpu",
        ])
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !cpu.status.success() {
        bail!(
            "{} could not train one CPU step: {}",
            bin.display(),
            String::from_utf8_lossy(&cpu.stderr)
        );
    }
    let gpu = Command::new(bin)
        .env("LD_LIBRARY_PATH", &ld)
        .current_dir(&dir)
        .args(["train", "dcgan", "--steps", "1", "--device", "cuda"])
        .output()?;
    let err = String::from_utf8_lossy(&gpu.stderr);
    if gpu.status.code() != Some(2) || !err.contains("no usable CUDA device") {
        bail!(
            "--device cuda with no GPU should exit 2 saying 'no usable CUDA device'; got {:?}: {err}",
            gpu.status.code()
        );
    }
    let said = err
        .lines()
        .find(|l| l.contains("no usable CUDA device"))
        .unwrap_or_default();
    eprintln!(
        "build-cuda: checked with the stand-in driver: one CPU step trains; --device cuda \
         exits 2: {}",
        said.trim()
    );
    Ok(())
}

/// The archive `build-cuda` leaves for the GPU machine, relative to the repository's root.
const CARRY: &str = "target/cuda/carry.tar.gz";

/// Packs [`CARRY`]: the CUDA `gan-cli` (`bin`) and this xtask, stripped of symbols, at their
/// paths in the repository (`target/cuda/release/gan-cli`, `target/release/xtask`), so that
/// `tar xzf` in the root puts them where `xtask gpu-check` looks. The device tool carries at
/// most 64 MiB, and the CUDA gan-cli alone is about 100 MB (71 MB stripped: candle's kernels,
/// mnist-mini and the evaluators are inside it); packed, both come to about 30 MB.
fn pack_for_device(root: &Path, bin: &Path) -> anyhow::Result<PathBuf> {
    let stage = root.join("target/cuda/carry");
    let _ = std::fs::remove_dir_all(&stage);
    let xtask = std::env::current_exe().context("cannot find the running xtask")?;
    for (from, rel) in [
        (bin, "target/cuda/release/gan-cli"),
        (xtask.as_path(), "target/release/xtask"),
    ] {
        let to = stage.join(rel);
        std::fs::create_dir_all(to.parent().expect("a file in a folder"))?;
        std::fs::copy(from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
        run_cmd(Command::new("strip").arg(&to), "strip (binutils)")?;
    }
    let out = root.join(CARRY);
    run_cmd(
        Command::new("tar")
            .arg("czf")
            .arg(&out)
            .arg("-C")
            .arg(&stage)
            .arg("target"),
        "tar czf",
    )?;
    std::fs::remove_dir_all(&stage)?;
    Ok(out)
}

fn prepend_path(dir: &Path) -> anyhow::Result<std::ffi::OsString> {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(old) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&old));
    }
    Ok(std::env::join_paths(paths)?)
}

fn run_cmd(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_functions_reads_pub_fn_names_with_the_prefix() {
        let text = "pub unsafe fn cuInit(Flags: u32) -> CUresult {\n    extern \"C\" {\n    \
                    fn cuInit(Flags: u32) -> CUresult;\n    }\n}\n    \
                    pub fn cuDeviceGet(device: *mut CUdevice) -> CUresult;\n    \
                    pub fn cuInit(Flags: u32) -> CUresult;\n}\n\
                    pub fn culib() -> &'static Lib {}\npub fn other() {}\n\
                    pub fn cuMemAlloc_v2<T>(x: T) {}\n";
        assert_eq!(
            declared_functions(text, "cu"),
            vec!["cuDeviceGet", "cuInit", "culib"]
        );
    }
}
