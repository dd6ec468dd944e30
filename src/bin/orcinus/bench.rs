//! `orcinus bench`: prompt-processing and generation speed, measured as llama-bench does, and a
//! memory read-bandwidth probe that puts generation speed against its roofline.
//!
//! Method (llama-bench's): the model is loaded once. Each test gets a fresh session sized for it,
//! one untimed warm-up run, then `r` timed runs, each on a cleared session:
//! - `pp{p}`: a `p`-token prompt (BOS first when the model adds one, then pseudo-random ids) in
//!   one forward pass (the session's batch is `p`);
//! - `tg{n}`: `n` single-token decode steps from an empty context (BOS first, then
//!   pseudo-random ids; no sampling), one forward pass per token.
//!
//! Tokens/s of a run = tokens / wall time; the report gives the mean ± sample standard deviation
//! over the runs.
//!
//! Bandwidth probe: a buffer much larger than the last-level cache (1 GiB by default) is
//! allocated once and written (so every page is resident), then summed by `t` threads, each
//! streaming its own contiguous part; the best of `r` passes is the read bandwidth. A decode step
//! reads (about) every weight once, so `model bytes × tg t/s` is the bandwidth that generation
//! draws, and its ratio to the probe is "tg as % of roofline": near 100% means generation is
//! memory-bound and the kernels have nothing left to win; far below means compute (or
//! overheads) dominate. (It slightly overstates the bytes read: only one row of the token
//! embedding table is read per step, unless it doubles as the output matrix.)

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use orcinus::model::Model;
use orcinus::quantize::FileType;
use serde_json::{json, Value};

use crate::common::ModelArgs;

/// `orcinus bench` flags (llama-bench's names where they exist).
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The GGUF model file (not needed with `--bandwidth` alone).
    #[arg(short = 'm', long = "model", required_unless_present = "bandwidth")]
    model: Option<PathBuf>,
    /// Prompt lengths to test (test `ppN` for length N), comma-separated; 0 skips.
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    n_prompt: Vec<usize>,
    /// Generation lengths to test (test `tgN` for length N), comma-separated; 0 skips.
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    n_gen: Vec<usize>,
    /// Tokens already in the context before each test (llama-bench's `-d`: test `tg128 @ d4096`
    /// decodes 128 tokens after an untimed 4096-token prompt), comma-separated.
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    n_depth: Vec<usize>,
    /// Threads (default: one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    threads: usize,
    /// Timed runs per test (after one untimed warm-up run).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    repetitions: u32,
    /// KV cache type: f16 or f32.
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    kv_type: String,
    /// Read the model into memory instead of mapping it (as `run --no-mmap`).
    #[arg(long)]
    no_mmap: bool,
    /// Lock the model's weights in RAM (as `run --mlock`).
    #[arg(long)]
    mlock: bool,
    /// Print a JSON array, one object per test, with llama-bench's field names.
    #[arg(long)]
    json: bool,
    /// Only measure read bandwidth (no model needed); with `-m`, measure it even without a
    /// `tg` test.
    #[arg(long)]
    bandwidth: bool,
    /// Skip the bandwidth probe (and so the roofline figure).
    #[arg(long, conflicts_with = "bandwidth")]
    no_bandwidth: bool,
    /// Size of the bandwidth probe's buffer in MiB (keep it well above the L3 cache).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    bandwidth_mib: u64,
}

/// One test's timings.
struct TestResult {
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    samples_ns: Vec<u64>,
}

impl TestResult {
    fn name(&self) -> String {
        test_name(self.n_prompt, self.n_gen, self.n_depth)
    }

    fn samples_ts(&self) -> Vec<f64> {
        let tokens = (self.n_prompt + self.n_gen) as f64;
        self.samples_ns
            .iter()
            .map(|&ns| tokens * 1e9 / ns.max(1) as f64)
            .collect()
    }
}

/// What the report says about the model.
struct ModelInfo {
    filename: String,
    model_type: String,
    /// Bytes of tensor data.
    size: u64,
    n_params: u64,
}

impl ModelInfo {
    fn of(path: &std::path::Path, model: &Model) -> Self {
        let file = model.file();
        let (mut size, mut n_params) = (0, 0);
        for t in file.tensor_infos() {
            size += t.size;
            n_params += t.n_elements();
        }
        let md = file.metadata();
        let arch = md.get_str("general.architecture").unwrap_or("?");
        let ftype = md
            .get_u32("general.file_type")
            .ok()
            .and_then(FileType::from_id)
            .map_or("?", FileType::name);
        ModelInfo {
            filename: path.display().to_string(),
            model_type: format!("{arch} {} {ftype}", human_count(n_params)),
            size,
            n_params,
        }
    }
}

/// The ISA of the kernels in use (detected once, or forced with `ORCINUS_ISA`).
fn isa() -> &'static str {
    orcinus::quant::kernels::isa().name()
}

/// `1.35e8` → `"135M"`.
fn human_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else {
        format!("{:.0}M", n / 1e6)
    }
}

/// Mean and sample standard deviation (0 for one sample), as llama-bench computes them.
fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n.max(1.0);
    let sd = if x.len() > 1 {
        (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

/// xorshift64*: pseudo-random token ids, the same sequence as the llama.cpp baseline's.
struct TokenRng(u64);

impl TokenRng {
    fn next_token(&mut self, n_vocab: usize) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 33) % n_vocab as u64) as u32
    }
}

/// llama-bench's name of a test: `pp512`, `tg128`, `tg128 @ d4096`.
fn test_name(n_prompt: usize, n_gen: usize, n_depth: usize) -> String {
    let base = if n_prompt > 0 {
        format!("pp{n_prompt}")
    } else {
        format!("tg{n_gen}")
    };
    match n_depth {
        0 => base,
        d => format!("{base} @ d{d}"),
    }
}

/// Runs one test (warm-up plus `reps` timed runs) on a fresh session, each run after an
/// untimed prompt of `n_depth` tokens.
fn run_test(
    model: &std::sync::Arc<Model>,
    margs: &ModelArgs,
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    reps: u32,
) -> anyhow::Result<TestResult> {
    let mut opts = margs.session_options();
    opts.n_ctx = (n_depth + n_prompt + n_gen).max(16);
    // The timed prompt in one pass; the depth in passes of up to 512 (it is not timed).
    opts.batch = n_prompt.max(n_depth.min(512)).max(1);
    let mut session = model.session(&opts)?;
    let n_vocab = model.hparams.n_vocab;
    let tok = &model.tokenizer;
    let mut rng = TokenRng(0x9e37_79b9_7f4a_7c15);
    let first = |rng: &mut TokenRng| match tok.bos_id().filter(|_| tok.add_bos_default()) {
        Some(bos) => bos,
        None => rng.next_token(n_vocab),
    };
    let mut once = |rng: &mut TokenRng| -> anyhow::Result<u64> {
        session.reset();
        if n_depth > 0 {
            let mut tokens = vec![first(rng)];
            tokens.extend((1..n_depth).map(|_| rng.next_token(n_vocab)));
            session.prefill(&tokens)?;
        }
        // The first token of a test is the BOS only in an empty context.
        let start = |rng: &mut TokenRng| match n_depth {
            0 => first(rng),
            _ => rng.next_token(n_vocab),
        };
        if n_prompt > 0 {
            let mut tokens = vec![start(rng)];
            tokens.extend((1..n_prompt).map(|_| rng.next_token(n_vocab)));
            let t0 = Instant::now();
            session.prefill(&tokens)?;
            return Ok(t0.elapsed().as_nanos() as u64);
        }
        let mut token = start(rng);
        let t0 = Instant::now();
        let mut logits = Vec::new();
        for _ in 0..n_gen {
            session.decode_step_into(token, &mut logits)?;
            token = rng.next_token(n_vocab);
        }
        Ok(t0.elapsed().as_nanos() as u64)
    };
    once(&mut rng).context("warm-up run")?;
    let samples_ns = (0..reps)
        .map(|_| once(&mut rng))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(TestResult {
        n_prompt,
        n_gen,
        n_depth,
        samples_ns,
    })
}

/// Peak resident set size of this process (`VmHWM`), where the OS reports it (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Best read bandwidth in bytes/s over `reps` passes of `threads` threads summing a `bytes`-long
/// buffer (written once before timing). The buffer is an anonymous mapping with transparent
/// huge pages asked for (Linux), like the page cache's large folios that back a cached model
/// file, and each thread sums its part in eight independent lanes, so the probe measures the
/// memory, not a dependency chain or 4 KiB page walks.
fn read_bandwidth(bytes: u64, threads: usize, reps: u32) -> anyhow::Result<f64> {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the bandwidth probe's threads")?;
    let words = usize::try_from(bytes / 8).context("bandwidth buffer too large")?;
    if words == 0 {
        anyhow::bail!("the bandwidth probe needs a buffer of at least 8 bytes");
    }
    let mut map = memmap2::MmapMut::map_anon(words * 8).with_context(|| {
        format!(
            "cannot allocate {} MiB for the bandwidth probe",
            bytes >> 20
        )
    })?;
    #[cfg(target_os = "linux")]
    {
        // Only a hint: without huge pages the probe still runs, a little lower.
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    let buf: &mut [u64] = bytemuck::cast_slice_mut(&mut map[..]);
    let chunk = words.div_ceil(threads);
    // Write every page from the thread that will read it (first touch places it).
    pool.install(|| {
        buf.par_chunks_mut(chunk).enumerate().for_each(|(c, part)| {
            for (i, w) in part.iter_mut().enumerate() {
                *w = (c * chunk + i) as u64;
            }
        })
    });
    let buf = &*buf;
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        let sum: u64 = pool.install(|| {
            buf.par_chunks(chunk)
                .map(sum_words)
                .reduce(|| 0, u64::wrapping_add)
        });
        std::hint::black_box(sum);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok((words * 8) as f64 / best)
}

/// Wrapping sum of `w` in eight independent lanes (vectorizes; no loop-carried chain through
/// one register).
fn sum_words(w: &[u64]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut it = w.chunks_exact(8);
    for c in &mut it {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = l.wrapping_add(x);
        }
    }
    let tail = it.remainder().iter().fold(0u64, |a, &x| a.wrapping_add(x));
    lanes.iter().fold(tail, |a, &x| a.wrapping_add(x))
}

fn threads_or_cores(t: usize) -> usize {
    if t == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        t
    }
}

/// `orcinus bench`: the report (a markdown table, or JSON with `--json`).
pub fn bench(a: BenchArgs) -> anyhow::Result<String> {
    let threads = threads_or_cores(a.threads);
    let probe_bytes = a.bandwidth_mib << 20;
    let Some(path) = a.model.clone() else {
        let bw = read_bandwidth(probe_bytes, threads, a.repetitions)?;
        return Ok(if a.json {
            serde_json::to_string_pretty(&json!({
                "n_threads": threads, "buffer_bytes": probe_bytes, "bandwidth_bytes_per_s": bw,
            }))? + "\n"
        } else {
            format!(
                "read bandwidth: {:.2} GB/s ({threads} threads, {} MiB buffer, best of {})\n",
                bw / 1e9,
                a.bandwidth_mib,
                a.repetitions
            )
        });
    };
    let tests: Vec<(usize, usize, usize)> = a
        .n_prompt
        .iter()
        .filter(|&&p| p > 0)
        .map(|&p| (p, 0))
        .chain(a.n_gen.iter().filter(|&&n| n > 0).map(|&n| (0, n)))
        .flat_map(|(p, n)| a.n_depth.iter().map(move |&d| (p, n, d)))
        .collect();
    if tests.is_empty() {
        bail!("nothing to measure: every -p and -n is 0");
    }
    let margs = ModelArgs {
        model: path.clone(),
        threads,
        ctx: 0,
        sliding_window: None,
        kv_type: a.kv_type.clone(),
        batch: 512,
        no_mmap: a.no_mmap,
        mlock: a.mlock,
    };
    let t0 = Instant::now();
    let model = margs.load(true)?;
    let load_s = t0.elapsed().as_secs_f64();
    let info = ModelInfo::of(&path, &model);
    let mut results = Vec::new();
    for &(p, n, d) in &tests {
        let r = run_test(&model, &margs, p, n, d, a.repetitions)
            .with_context(|| format!("test {}", test_name(p, n, d)))?;
        results.push(r);
    }
    // Read before the probe, whose buffer would dominate it.
    let rss = peak_rss_bytes();
    let huge = model.file().huge_page_share();
    let has_tg = results.iter().any(|r| r.n_gen > 0);
    let bandwidth = if !a.no_bandwidth && (has_tg || a.bandwidth) {
        Some(read_bandwidth(probe_bytes, threads, a.repetitions)?)
    } else {
        None
    };
    let roofline = |r: &TestResult| -> Option<f64> {
        let bw = bandwidth?;
        (r.n_gen > 0).then(|| {
            let (ts, _) = mean_sd(&r.samples_ts());
            100.0 * info.size as f64 * ts / bw
        })
    };
    if a.json {
        let arr: Vec<Value> = results
            .iter()
            .map(|r| {
                let ns: Vec<f64> = r.samples_ns.iter().map(|&x| x as f64).collect();
                let (avg_ns, sd_ns) = mean_sd(&ns);
                let ts = r.samples_ts();
                let (avg_ts, sd_ts) = mean_sd(&ts);
                json!({
                    "model_filename": info.filename,
                    "model_type": info.model_type,
                    "model_size": info.size,
                    "model_n_params": info.n_params,
                    "backends": "CPU",
                    "n_threads": threads,
                    "n_batch": r.n_prompt.max(1),
                    "type_k": a.kv_type, "type_v": a.kv_type,
                    "n_prompt": r.n_prompt,
                    "n_gen": r.n_gen,
                    "n_depth": r.n_depth,
                    "avg_ns": avg_ns.round() as u64,
                    "stddev_ns": sd_ns.round() as u64,
                    "avg_ts": avg_ts,
                    "stddev_ts": sd_ts,
                    "samples_ns": r.samples_ns,
                    "samples_ts": ts,
                    "peak_rss_bytes": rss,
                    "isa": isa(),
                    "load_s": load_s,
                    "bandwidth_bytes_per_s": bandwidth,
                    "roofline_pct": roofline(r),
                    "weights_huge_page_pct": huge.map(|h| 100.0 * h),
                    "use_mmap": !a.no_mmap,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&arr)? + "\n");
    }
    let mut out = String::new();
    out.push_str(&format!(
        "| {:<30} | {:>10} | {:>10} | {:<10} | {:>7} | {:>15} | {:>20} |\n",
        "model", "size", "params", "backend", "threads", "test", "t/s"
    ));
    out.push_str(
        "| ------------------------------ | ---------: | ---------: | ---------- | ------: \
         | --------------: | -------------------: |\n",
    );
    for r in &results {
        let (ts, sd) = mean_sd(&r.samples_ts());
        out.push_str(&format!(
            "| {:<30} | {:>10} | {:>10} | {:<10} | {:>7} | {:>15} | {:>20} |\n",
            info.model_type,
            human_bytes(info.size),
            format!("{:.2} M", info.n_params as f64 / 1e6),
            "CPU",
            threads,
            r.name(),
            format!("{ts:.2} ± {sd:.2}"),
        ));
    }
    out.push('\n');
    out.push_str(&match rss {
        Some(b) => format!("peak RSS: {}\n", human_bytes(b)),
        None => "peak RSS: unavailable on this OS\n".to_string(),
    });
    out.push_str(&format!("load time: {load_s:.2} s\n"));
    if let Some(h) = huge {
        out.push_str(&format!(
            "model {} in 2 MiB pages: {:.0}% of its resident bytes\n",
            if margs.no_mmap {
                "read into memory"
            } else {
                "file mapped"
            },
            100.0 * h
        ));
    }
    out.push_str(&format!("kernels: {}\n", isa()));
    if let Some(bw) = bandwidth {
        out.push_str(&format!(
            "read bandwidth: {:.2} GB/s ({threads} threads, {} MiB buffer, best of {})\n",
            bw / 1e9,
            a.bandwidth_mib,
            a.repetitions
        ));
        for r in &results {
            if let Some(pct) = roofline(r) {
                out.push_str(&format!(
                    "{}: {:.1}% of roofline ({} of weights per token at {:.2} GB/s)\n",
                    r.name(),
                    pct,
                    human_bytes(info.size),
                    bw / 1e9
                ));
            }
        }
    }
    Ok(out)
}

/// Bytes as MiB below 1 GiB, GiB above.
fn human_bytes(b: u64) -> String {
    let mib = b as f64 / (1u64 << 20) as f64;
    if mib < 1024.0 {
        format!("{mib:.2} MiB")
    } else {
        format!("{:.2} GiB", mib / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        let (m, s) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - 1.290_994).abs() < 1e-6);
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
    }

    #[test]
    fn token_ids_stay_in_the_vocabulary() {
        let mut r = TokenRng(0x9e37_79b9_7f4a_7c15);
        assert!((0..10_000).all(|_| r.next_token(49152) < 49152));
    }

    #[test]
    fn bandwidth_probe_runs() {
        let bw = read_bandwidth(8 << 20, 2, 2).unwrap();
        assert!(bw > 1e8, "{bw}");
    }
}
