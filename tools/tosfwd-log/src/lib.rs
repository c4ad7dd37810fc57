// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The logger of the project's binaries: what they and their libraries log
//! (the mediator's refusals, a backend's device errors, the TEE service's
//! connections) goes to standard error, one line per record,
//! "PROGRAM: LEVEL: message". Warnings and errors by default; an
//! environment variable of the program's (error, warn, info, debug, trace,
//! off) chooses another level, and a program may raise it further (`-v`).

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr {
    program: &'static str,
}

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!(
                "{}",
                line(self.program, record.level(), &record.args().to_string())
            );
        }
    }

    fn flush(&self) {}
}

/// One record as printed.
pub fn line(program: &str, level: log::Level, msg: &str) -> String {
    let level = match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    };
    format!("{program}: {level}: {}", msg.replace('\n', " "))
}

/// The level that the value of the environment variable `env` names
/// (`None`: warnings).
pub fn level(env: &str, value: Option<&str>) -> Result<LevelFilter, String> {
    match value {
        None => Ok(LevelFilter::Warn),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{env}={v}: want one of off, error, warn, info, debug, trace")),
    }
}

/// `filter` raised by `verbose` steps (`-v` info, `-vv` debug, `-vvv`
/// trace), never lowered.
pub fn raised(filter: LevelFilter, verbose: u8) -> LevelFilter {
    let asked = match verbose {
        0 => LevelFilter::Off,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    filter.max(asked)
}

/// Installs the logger of `program` at the level the environment variable
/// `env` asks for, raised by `verbose` (see [`raised`]). Once per process.
pub fn init(program: &'static str, env: &str, verbose: u8) -> Result<(), String> {
    let value = std::env::var(env).ok();
    let filter = raised(level(env, value.as_deref())?, verbose);
    let logger = Box::leak(Box::new(Stderr { program }));
    log::set_logger(logger).map_err(|e| format!("cannot install the logger: {e}"))?;
    log::set_max_level(filter);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_naming_the_program_and_the_level() {
        assert_eq!(
            line(
                "tosfwd-vmm",
                log::Level::Warn,
                "host TEE: INVOKE: failed\nbadly"
            ),
            "tosfwd-vmm: warning: host TEE: INVOKE: failed badly"
        );
        assert_eq!(
            line("tosfwd-teed", log::Level::Error, "x"),
            "tosfwd-teed: error: x"
        );
    }

    #[test]
    fn the_level_defaults_to_warnings_and_a_bad_one_is_named() {
        let env = "TOSFWD_VMM_LOG";
        assert_eq!(level(env, None), Ok(LevelFilter::Warn));
        assert_eq!(level(env, Some("debug")), Ok(LevelFilter::Debug));
        assert_eq!(level(env, Some("off")), Ok(LevelFilter::Off));
        assert_eq!(
            level(env, Some("loud")).unwrap_err(),
            "TOSFWD_VMM_LOG=loud: want one of off, error, warn, info, debug, trace"
        );
    }

    #[test]
    fn verbosity_raises_the_level_and_never_lowers_it() {
        assert_eq!(raised(LevelFilter::Warn, 0), LevelFilter::Warn);
        assert_eq!(raised(LevelFilter::Warn, 1), LevelFilter::Info);
        assert_eq!(raised(LevelFilter::Warn, 2), LevelFilter::Debug);
        assert_eq!(raised(LevelFilter::Warn, 9), LevelFilter::Trace);
        assert_eq!(raised(LevelFilter::Debug, 1), LevelFilter::Debug);
        assert_eq!(raised(LevelFilter::Off, 0), LevelFilter::Off);
    }
}
