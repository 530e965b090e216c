//! `portico`: parse the command line; run the controller until SIGTERM or Ctrl-C, or one of the
//! offline commands (`check`, `explain`, `migrate`).
// Unsafe only for the two `mi_option_set` calls of `tune_allocator` (a measured win: RSS) and
// the allocator's calls into mimalloc (`Allocator`, a measured win: instructions per request).
#![deny(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use portico::config::{Args, CheckArgs, Command, ExplainArgs, MigrateArgs, OutputFormat};

/// mimalloc instead of glibc malloc: per-thread free lists make the proxy's many short-lived
/// allocations per request cheaper (docs/performance.md has the numbers). Built without the
/// default `mimalloc` feature, the system allocator is used (docs/decisions.md "Allocator").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// mimalloc, asked for plain blocks when the alignment is one every block has. The `mimalloc`
/// crate (0.1.52) calls `mi_malloc_aligned` for every allocation, and mimalloc 3 serves that
/// from its fast path only for blocks up to 1 KiB whose next free block happens to be aligned;
/// every larger one (the boxed request future, task cells, buffers: ~6 per proxied request)
/// went through the generic aligned path, ~215 instructions each (docs/performance.md).
/// `mi_malloc` aligns every block to `MI_MAX_ALIGN_SIZE` (16), and to its size's natural
/// alignment below that; the condition is the one Rust's own `System` allocator uses.
#[cfg(feature = "mimalloc")]
struct Allocator;

/// `MI_MAX_ALIGN_SIZE` (mimalloc 3 `include/mimalloc/types.h`).
#[cfg(feature = "mimalloc")]
const MI_MAX_ALIGN_SIZE: usize = 16;

#[cfg(feature = "mimalloc")]
fn plain(layout: std::alloc::Layout) -> bool {
    layout.align() <= MI_MAX_ALIGN_SIZE && layout.align() <= layout.size()
}

// SAFETY (all four): each call passes the layout's size (and alignment where the block is not
// plain) to mimalloc, which returns a block of at least that size and alignment or null, as
// `GlobalAlloc` requires; every block is freed by `mi_free`, which takes any mimalloc block.
#[cfg(feature = "mimalloc")]
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if plain(layout) {
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            unsafe { libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if plain(layout) {
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            unsafe { libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MI_MAX_ALIGN_SIZE && layout.align() <= new_size {
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            unsafe {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Makes mimalloc give freed memory back to the OS (docs/decisions.md "Allocator"): by
/// default (mimalloc 3) it commits its arenas eagerly and purges freed pages only after a
/// delay, and only when the thread that freed them allocates again. The control-plane thread
/// frees a whole table's worth after a rebuild and then sleeps, so that memory stayed resident
/// (5,000 Ingresses: 98 MiB after load, 75 MiB with these two settings). An operator's
/// `MIMALLOC_ARENA_EAGER_COMMIT` / `MIMALLOC_PURGE_DELAY` still wins.
///
/// It runs from `.init_array`, before `main` and before Rust's runtime makes its first
/// allocation: the first arena is reserved at the first allocation, so setting the options in
/// `main` came too late for it (measured: 88 MiB instead of 75 at 5,000 Ingresses).
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

#[cfg(all(feature = "mimalloc", target_os = "linux"))]
#[allow(unsafe_code)]
extern "C" fn tune_allocator() {
    // mimalloc 3's `mi_option_t` (c_src/mimalloc/v3/include/mimalloc.h of libmimalloc-sys
    // 0.1.49; the crate's own constants follow mimalloc 2's numbering for these two).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    for (option, env) in [
        (ARENA_EAGER_COMMIT, c"MIMALLOC_ARENA_EAGER_COMMIT"),
        (PURGE_DELAY, c"MIMALLOC_PURGE_DELAY"),
    ] {
        // SAFETY: `getenv` before `main` (no thread can be changing the environment yet), and
        // `mi_option_set` only stores an integer in mimalloc's option table. Neither allocates
        // through the Rust allocator.
        unsafe {
            if libc::getenv(env.as_ptr()).is_null() {
                libmimalloc_sys::mi_option_set(option, 0);
            }
        }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    match args.command.clone() {
        Some(Command::Check(check)) => run_check(check),
        Some(Command::Explain(explain)) => run_explain(explain),
        Some(Command::Migrate(migrate)) => run_migrate(migrate),
        None => run_controller(args),
    }
}

#[tokio::main]
async fn run_controller(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.validate()?;
    let log_level = portico::app::init_tracing(config.log_format, &config.log_level);
    portico::app::run(config, log_level, shutdown_signal())
        .await
        .context("portico failed")?;
    Ok(ExitCode::SUCCESS)
}

/// `portico check`: exit 0 when no Ingress has an error, 1 when one has, 2 on bad usage.
fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(input) = args.manifests.or(args.input) else {
        eprintln!(
            "portico check: name the manifests: --manifests DIR, a DIR or file, or - for stdin"
        );
        return Ok(ExitCode::from(2));
    };
    let options = match args.translate.options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("portico check: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let loaded = portico::check::load_input(&input, &args.manifest_limits.limits());
    let translation = portico::translate::translate(
        &loaded.snapshot,
        &options,
        &mut portico::translate::Cache::default(),
    );
    let report = portico::check::report(&loaded, &translation);
    print!("{}", report.text);
    Ok(ExitCode::from(
        u8::try_from(report.exit_code()).unwrap_or(1),
    ))
}

/// `portico explain`: the explanation on stdout; load errors on stderr.
fn run_explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let options = args.translate.options()?;
    let loaded = portico::check::load_input(&args.manifests, &args.manifest_limits.limits());
    for e in &loaded.errors {
        eprintln!("portico explain: manifest skipped: {e}");
    }
    let mut translation = portico::translate::translate(
        &loaded.snapshot,
        &options,
        &mut portico::translate::Cache::default(),
    );
    // As the controller would judge it now (expired certificates are noted).
    portico::translate::certificate_validity(&mut translation, std::time::SystemTime::now());
    let explanation = portico::explain::explain_with(
        &translation,
        None,
        &args.host,
        &args.path,
        args.sni.as_deref(),
        args.request.path_rules(),
    );
    match args.output {
        OutputFormat::Text => print!("{explanation}"),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `portico migrate`: the report on stdout; exit 0 when nothing blocks, 1 when something
/// does, 2 when the input cannot be read (or none is named).
fn run_migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let input = match args.input {
        Some(input) => input,
        None if !std::io::stdin().is_terminal() => "-".into(),
        None => {
            eprintln!("portico migrate: name the manifests: a DIR or file, or - for stdin");
            return Ok(ExitCode::from(2));
        }
    };
    let report = portico::migrate::load::load(&input, &args.manifest_limits.limits())
        .map_err(portico::migrate::Error::from)
        .and_then(|inventory| portico::migrate::report(&inventory, args.configmap.as_deref()));
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("portico migrate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    match args.output {
        OutputFormat::Text => print!("{}", report.text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::from(report.exit_code))
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
