//! `appipcd`: the per-user appipc broker. Everything is in the `appipc-broker` library; this
//! parses the command line and runs it.

#[path = "../daemon_args.rs"]
mod daemon_args;
#[path = "../logging.rs"]
mod logging;

fn main() -> std::process::ExitCode {
    // glibc's per-thread caches of freed memory cut to one chunk a size, so that a flood's
    // memory goes back to the kernel after it: glibc reads this setting only at start, so the
    // broker starts itself again with it (`GLIBC_TUNABLES`) if it does not have it yet.
    appipc_sys::malloc::reexec_with_small_tcache();
    // One malloc arena, not one per thread: memory a flood took and gave back is then free for
    // every thread and can be returned to the kernel (`malloc_trim`), instead of staying with
    // the arena of whichever thread took it. Before any other thread starts.
    appipc_sys::malloc::limit_arenas(1);
    // The broker starts its session keeper from this same program (its environment says so,
    // before any argument is parsed).
    if let Some(code) = appipc_broker::keeper::main_if_keeper() {
        return code;
    }
    let cli: daemon_args::Appipcd = daemon_args::parse_or_exit();
    logging::init(cli.args.log.as_deref(), "info");
    match appipc_broker::run_daemon() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appipcd: {e}");
            std::process::ExitCode::from(daemon_args::exit_code(&e))
        }
    }
}
