// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The VMM's logger: what the libraries log (the mediator's refusals, the
//! host TEE backend's device errors) goes to standard error, one line per
//! record, "tosfwd-vmm: LEVEL: message". Warnings and errors by default;
//! the environment variable TOSFWD_VMM_LOG (error, warn, info, debug,
//! trace, off) chooses another level.

use log::{LevelFilter, Log, Metadata, Record};

/// The environment variable that sets the level.
pub const LOG_ENV: &str = "TOSFWD_VMM_LOG";

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("{}", line(record.level(), &record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

/// One record as printed.
pub fn line(level: log::Level, msg: &str) -> String {
    let level = match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    };
    format!("tosfwd-vmm: {level}: {}", msg.replace('\n', " "))
}

/// The level `value` of TOSFWD_VMM_LOG names (`None`: warnings).
pub fn level(value: Option<&str>) -> Result<LevelFilter, String> {
    match value {
        None => Ok(LevelFilter::Warn),
        Some(v) => v.parse().map_err(|_| {
            format!("{LOG_ENV}={v}: want one of off, error, warn, info, debug, trace")
        }),
    }
}

/// Installs the logger at the level TOSFWD_VMM_LOG asks for.
pub fn init() -> Result<(), String> {
    let value = std::env::var(LOG_ENV).ok();
    let filter = level(value.as_deref())?;
    static LOGGER: Stderr = Stderr;
    log::set_logger(&LOGGER).map_err(|e| format!("cannot install the logger: {e}"))?;
    log::set_max_level(filter);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_naming_the_vmm_and_the_level() {
        assert_eq!(
            line(log::Level::Warn, "host TEE: INVOKE: failed\nbadly"),
            "tosfwd-vmm: warning: host TEE: INVOKE: failed badly"
        );
        assert_eq!(line(log::Level::Error, "x"), "tosfwd-vmm: error: x");
    }

    #[test]
    fn the_level_defaults_to_warnings_and_a_bad_one_is_named() {
        assert_eq!(level(None), Ok(LevelFilter::Warn));
        assert_eq!(level(Some("debug")), Ok(LevelFilter::Debug));
        assert_eq!(level(Some("off")), Ok(LevelFilter::Off));
        assert_eq!(
            level(Some("loud")).unwrap_err(),
            "TOSFWD_VMM_LOG=loud: want one of off, error, warn, info, debug, trace"
        );
    }
}
