//! The floor sluice is measured against: the same stage component called with wasmtime alone —
//! same engine configuration, a fresh store and WASI context per call with a fresh `/out`
//! preopened read-write, instantiate, `run` with the same config — and nothing of sluice's
//! (no log file, no hashing, no report). `cargo xtask bench` runs it beside `sluice run`.
//!
//! `cargo bench -p sluice --bench bare_wasmtime -- PLUGIN CONFIG_JSON CALLS [--blocking]`
//! prints one line per figure: `bare <what> median_us p10_us p90_us n`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "stage",
    exports: { default: async },
});

use self::sluice::pipeline::log;
use self::sluice::pipeline::types::Phase;

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    log_lines: usize,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for State {
    fn log(&mut self, _level: log::Level, _message: String) {
        self.log_lines += 1;
    }
}

impl self::sluice::pipeline::types::Host for State {}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let blocking = args.iter().any(|a| a == "--blocking");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [plugin, config, calls] = positional[..] else {
        bail!("usage: bare_wasmtime PLUGIN CONFIG_JSON CALLS [--blocking]");
    };
    let calls: usize = calls.parse().context("CALLS is a number")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(Path::new(plugin), config, calls, blocking))
}

async fn bench(plugin: &Path, config: &str, calls: usize, blocking: bool) -> Result<()> {
    let started = Instant::now();
    let engine = ::sluice::sandbox::engine::new_engine()?;
    let engine_time = started.elapsed();
    let bytes =
        std::fs::read(plugin).with_context(|| format!("cannot read {}", plugin.display()))?;
    let compiled = Component::new(&engine, &bytes).map_err(wasm_error)?;
    let serialized = compiled.serialize().map_err(wasm_error)?;
    let started = Instant::now();
    // SAFETY: the bytes were serialized by this very engine a line above.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(&engine, &serialized) }.map_err(wasm_error)?;
    let deserialize_time = started.elapsed();
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_error)?;
    log::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(wasm_error)?;
    let pre = StagePre::new(linker.instantiate_pre(&component).map_err(wasm_error)?)
        .map_err(wasm_error)?;
    println!("bare engine {} - - 1", micros(engine_time));
    println!("bare deserialize {} - - 1", micros(deserialize_time));

    let scratch = tempfile::tempdir()?;
    let mut samples = Vec::with_capacity(calls);
    for call in 0..calls {
        let out = scratch.path().join(format!("out-{call}"));
        let started = Instant::now();
        std::fs::create_dir(&out)?;
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(blocking)
            .preopened_dir(&out, "/out", FsPerms::ReadWrite)
            .map_err(wasm_error)?;
        let state = State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            log_lines: 0,
        };
        let mut store = Store::new(&engine, state);
        store.set_epoch_deadline(u64::MAX / 2);
        let stage = pre
            .instantiate_async(&mut store)
            .await
            .map_err(wasm_error)?;
        let context = StageContext {
            pipeline: "bench".into(),
            run_id: format!("run-{call}"),
            stage: "stage".into(),
            phase: Phase::Code,
            config: config.to_string(),
            inputs: Vec::new(),
            output_dir: "/out".into(),
            earlier: Vec::new(),
        };
        let result = stage
            .call_run(&mut store, &context)
            .await
            .map_err(wasm_error)?;
        samples.push(started.elapsed());
        if let Err(failure) = result {
            bail!("the stage failed: {}", failure.message);
        }
        if call == 0 && std::fs::read_dir(&out)?.next().is_none() {
            bail!("the stage wrote nothing into /out");
        }
    }
    let label = if blocking { "run-blocking" } else { "run" };
    print(label, &mut samples);
    Ok(())
}

/// wasmtime's own error type, as an `anyhow` error for `?`.
fn wasm_error(err: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{err:?}")
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn print(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "bare {label} {} {} {} {}",
        micros(at(0.5)),
        micros(at(0.1)),
        micros(at(0.9)),
        samples.len()
    );
}
