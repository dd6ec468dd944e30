//! `llama-cpp-baseline`: llama.cpp (through the `llama-cpp-2` crate), measured the way
//! `orcinus bench` measures, printing the same JSON (llama-bench's field names).
//!
//! ```text
//! llama-cpp-baseline -m FILE [-p 512] [-n 128] [-t 2] [-r 3]
//! ```
//!
//! The method is llama-bench's: the model is loaded once; each test gets one untimed warm-up
//! run and then `r` timed runs, each on a cleared KV cache. `pp{p}`: a `p`-token prompt (BOS,
//! then pseudo-random ids) in one batch (`n_batch = n_ubatch = p`). `tg{n}`: `n` single-token
//! decodes from an empty context (BOS first, then pseudo-random ids).
//!
//! CPU only: the crate is built without GPU features and no layer is offloaded.
//! `--no-extra-bufts` loads the model with `use_extra_bufts = false` (llama-bench's
//! `--no-repack`): no load-time weight repacking (Q4_0/Q4_K/IQ4_NL/Q8_0 re-layouts) and no AMX
//! buffers. `llama-cpp-2`'s `LlamaModelParams` has no setter for it, so the model, context and
//! batches go through `llama-cpp-sys-2`'s C API (as llama-bench itself does); `llama-cpp-2`
//! initialises the backend and silences its log.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_sys_2 as sys;
use serde_json::json;

struct Args {
    model: PathBuf,
    prompts: Vec<usize>,
    gens: Vec<usize>,
    threads: usize,
    reps: usize,
    extra_bufts: bool,
}

fn list(v: &str) -> anyhow::Result<Vec<usize>> {
    v.split(',')
        .map(|s| {
            s.trim()
                .parse()
                .with_context(|| format!("bad number `{s}`"))
        })
        .collect()
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        model: PathBuf::new(),
        prompts: vec![512],
        gens: vec![128],
        threads: 2,
        reps: 3,
        extra_bufts: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-m" | "--model" => a.model = PathBuf::from(value()?),
            "-p" | "--n-prompt" => a.prompts = list(&value()?)?,
            "-n" | "--n-gen" => a.gens = list(&value()?)?,
            "-t" | "--threads" => a.threads = value()?.parse()?,
            "-r" | "--repetitions" => a.reps = value()?.parse()?,
            "--no-extra-bufts" | "--no-repack" => a.extra_bufts = false,
            "--json" => {} // JSON is the only output; accepted for symmetry with `orcinus bench`.
            "-h" | "--help" => {
                println!("llama-cpp-baseline -m FILE [-p 512[,..]] [-n 128[,..]] [-t 2] [-r 3] [--no-extra-bufts]");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    if a.model.as_os_str().is_empty() {
        bail!("-m FILE is required");
    }
    if a.reps == 0 || a.threads == 0 {
        bail!("-r and -t must be at least 1");
    }
    Ok(a)
}

/// xorshift64*: the same pseudo-random token ids as `orcinus bench`.
struct Rng(u64);

impl Rng {
    fn next_token(&mut self, n_vocab: i32) -> sys::llama_token {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 33) % n_vocab as u64) as i32
    }
}

/// A loaded model (freed on drop).
struct Model(*mut sys::llama_model);

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the pointer came from llama_model_load_from_file and every context made from
        // it has been dropped (contexts borrow the model).
        unsafe { sys::llama_model_free(self.0) }
    }
}

/// One context over a model (freed on drop).
struct Bench<'a> {
    _model: &'a Model,
    ctx: *mut sys::llama_context,
    n_vocab: i32,
    bos: Option<sys::llama_token>,
    rng: Rng,
}

impl Drop for Bench<'_> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from llama_init_from_model and is freed once.
        unsafe { sys::llama_free(self.ctx) }
    }
}

impl Bench<'_> {
    fn first_token(&mut self) -> sys::llama_token {
        match self.bos {
            Some(b) => b,
            None => self.rng.next_token(self.n_vocab),
        }
    }

    fn decode(&mut self, tokens: &mut [sys::llama_token]) -> anyhow::Result<()> {
        // SAFETY: ctx is live; the batch borrows `tokens`, which outlives the call; decoding is
        // synchronised before returning, as llama-bench does after each batch.
        let rc = unsafe {
            let batch = sys::llama_batch_get_one(tokens.as_mut_ptr(), tokens.len() as i32);
            let rc = sys::llama_decode(self.ctx, batch);
            sys::llama_synchronize(self.ctx);
            rc
        };
        ensure!(rc == 0, "llama_decode failed ({rc})");
        Ok(())
    }

    fn clear(&mut self) {
        // SAFETY: ctx is live.
        unsafe { sys::llama_memory_clear(sys::llama_get_memory(self.ctx), false) }
    }

    fn prompt(&mut self, n: usize) -> anyhow::Result<()> {
        let mut tokens = vec![self.first_token()];
        while tokens.len() < n {
            tokens.push(self.rng.next_token(self.n_vocab));
        }
        self.decode(&mut tokens)
    }

    fn gen(&mut self, n: usize) -> anyhow::Result<()> {
        let mut token = self.first_token();
        for _ in 0..n {
            self.decode(std::slice::from_mut(&mut token))?;
            token = self.rng.next_token(self.n_vocab);
        }
        Ok(())
    }
}

/// Peak resident set size (`VmHWM` in `/proc/self/status`), Linux only.
fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sd = if x.len() > 1 {
        (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let t0 = Instant::now();
    let path = CString::new(a.model.to_str().context("model path is not UTF-8")?)?;
    // SAFETY: plain C calls; the params struct is a value; the result is checked for null.
    let model = unsafe {
        let mut mp = sys::llama_model_default_params();
        mp.n_gpu_layers = 0; // CPU only, even if a GPU backend were compiled in
        mp.use_extra_bufts = a.extra_bufts;
        sys::llama_model_load_from_file(path.as_ptr(), mp)
    };
    ensure!(!model.is_null(), "cannot load {}", a.model.display());
    let model = Model(model);
    let load_s = t0.elapsed().as_secs_f64();
    let mut desc = [0u8; 256];
    // SAFETY: the model is live; llama_model_desc writes at most buf_size bytes, NUL-terminated.
    let (model_type, size, n_params, n_vocab, bos) = unsafe {
        sys::llama_model_desc(model.0, desc.as_mut_ptr().cast(), desc.len());
        let vocab = sys::llama_model_get_vocab(model.0);
        let bos = sys::llama_vocab_get_add_bos(vocab).then(|| sys::llama_vocab_bos(vocab));
        (
            CStr::from_bytes_until_nul(&desc)?
                .to_string_lossy()
                .into_owned(),
            sys::llama_model_size(model.0),
            sys::llama_model_n_params(model.0),
            sys::llama_vocab_n_tokens(vocab),
            bos,
        )
    };

    let mut tests: Vec<(usize, usize)> = a
        .prompts
        .iter()
        .filter(|&&p| p > 0)
        .map(|&p| (p, 0))
        .collect();
    tests.extend(a.gens.iter().filter(|&&n| n > 0).map(|&n| (0, n)));
    let mut out = Vec::new();
    for (p, n) in tests {
        let ubatch = p.max(1) as u32;
        // SAFETY: the model is live; the result is checked for null and owned by `Bench`.
        let ctx = unsafe {
            let mut cp = sys::llama_context_default_params();
            cp.n_ctx = (p + n).max(16) as u32;
            cp.n_batch = ubatch;
            cp.n_ubatch = ubatch;
            cp.n_threads = a.threads as i32;
            cp.n_threads_batch = a.threads as i32;
            sys::llama_init_from_model(model.0, cp)
        };
        ensure!(!ctx.is_null(), "cannot create a llama.cpp context");
        let mut b = Bench {
            _model: &model,
            ctx,
            n_vocab,
            bos,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
        };
        let run = |b: &mut Bench<'_>| -> anyhow::Result<()> {
            b.clear();
            if p > 0 {
                b.prompt(p)?;
            }
            if n > 0 {
                b.gen(n)?;
            }
            Ok(())
        };
        run(&mut b)?; // warm-up
        let mut ns = Vec::new();
        for _ in 0..a.reps {
            let t = Instant::now();
            run(&mut b)?;
            ns.push(t.elapsed().as_nanos() as u64);
        }
        let tokens = (p + n) as f64;
        let ts: Vec<f64> = ns.iter().map(|&t| tokens * 1e9 / t as f64).collect();
        let nsf: Vec<f64> = ns.iter().map(|&t| t as f64).collect();
        let (avg_ns, sd_ns) = mean_sd(&nsf);
        let (avg_ts, sd_ts) = mean_sd(&ts);
        out.push(json!({
            "build_commit": "llama-cpp-sys-2",
            "backends": "CPU",
            "model_filename": a.model.display().to_string(),
            "model_type": model_type,
            "model_size": size,
            "model_n_params": n_params,
            "n_batch": ubatch, "n_ubatch": ubatch,
            "n_threads": a.threads,
            "type_k": "f16", "type_v": "f16",
            "n_prompt": p, "n_gen": n, "n_depth": 0,
            "avg_ns": avg_ns.round() as u64,
            "stddev_ns": sd_ns.round() as u64,
            "avg_ts": avg_ts, "stddev_ts": sd_ts,
            "samples_ns": ns, "samples_ts": ts,
            "load_s": load_s,
            "isa": "llama.cpp (target-cpu=native)",
            "use_extra_bufts": a.extra_bufts,
        }));
    }
    let rss = peak_rss_bytes();
    for o in &mut out {
        o["peak_rss_bytes"] = json!(rss);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
