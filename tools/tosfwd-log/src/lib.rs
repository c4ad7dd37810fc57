// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The conventions the project's binaries (tosfwd-vmm, tosfwd-teed,
//! tosfwd-tee-client) share.
//!
//! - Logging: what they and their libraries log (the mediator's refusals, a
//!   backend's device errors, the TEE service's connections) goes to
//!   standard error, one line per record, "PROGRAM: LEVEL: message".
//!   Warnings and errors by default; `RUST_LOG` takes the usual directives
//!   (`info`, `tee_remote=debug`, `warn,host_tee=trace`); `-v`/`-q` on the
//!   command line ([`Verbosity`]) set the level of everything no
//!   `MODULE=LEVEL` directive names, over `RUST_LOG`'s own.
//! - Usage errors ([`parse_args`]): one line naming the program, exit
//!   status [`EXIT_USAGE`] (2, as clap's); `--help` and `--version` print
//!   to standard output and exit 0.

use std::process::ExitCode;

use log::{LevelFilter, Log, Metadata, Record};

/// The exit status of a command line the program does not accept: 2, in
/// every binary of the project (clap's own).
pub const EXIT_USAGE: u8 = 2;

/// The environment variable of the log directives.
pub const LOG_ENV: &str = "RUST_LOG";

/// `-v` and `-q`, for a binary's clap command line (`#[command(flatten)]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct Verbosity {
    /// More log on standard error: -v info, -vv debug, -vvv trace (over
    /// RUST_LOG's level; its MODULE=LEVEL directives still apply).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log: -q errors only, -qq none.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

impl Verbosity {
    /// The level `-v`/`-q` ask for (`None`: neither given).
    pub fn level(self) -> Option<LevelFilter> {
        Some(match (self.verbose, self.quiet) {
            (0, 0) => return None,
            (0, 1) => LevelFilter::Error,
            (0, _) => LevelFilter::Off,
            (1, _) => LevelFilter::Info,
            (2, _) => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        })
    }
}

struct Stderr {
    program: &'static str,
    filter: env_filter::Filter,
}

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.filter.matches(record) {
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

/// The filter of `RUST_LOG`'s value `directives` (`None`: unset) and the
/// command line's `verbosity`: warnings by default; `RUST_LOG`'s
/// directives; then `-v`/`-q`, which set the level of every module that
/// no `MODULE=LEVEL` directive names.
pub fn filter(
    directives: Option<&str>,
    verbosity: Verbosity,
) -> Result<env_filter::Filter, String> {
    let mut b = env_filter::Builder::new();
    b.filter_level(LevelFilter::Warn);
    if let Some(d) = directives {
        b.try_parse(d).map_err(|e| {
            format!(
                "{LOG_ENV}={d}: {e} (want LEVEL or MODULE=LEVEL, comma-separated; LEVEL one \
                 of off, error, warn, info, debug, trace)"
            )
        })?;
    }
    if let Some(level) = verbosity.level() {
        b.filter_level(level);
    }
    Ok(b.build())
}

/// Installs the logger of `program` with the filter of `RUST_LOG` and
/// `verbosity` (see [`filter`]). Once per process.
pub fn init(program: &'static str, verbosity: Verbosity) -> Result<(), String> {
    let value = std::env::var(LOG_ENV).ok();
    let filter = filter(value.as_deref(), verbosity)?;
    let max = filter.filter();
    let logger = Box::leak(Box::new(Stderr { program, filter }));
    log::set_logger(logger).map_err(|e| format!("cannot install the logger: {e}"))?;
    log::set_max_level(max);
    Ok(())
}

/// A clap error as one line: its message, without the usage and the
/// "For more information" lines (the message's continuation lines, such as
/// the arguments that are missing or a tip, joined on).
pub fn usage_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut out = String::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        if l.is_empty() {
            continue;
        }
        let l = l.strip_prefix("error: ").unwrap_or(l);
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(l);
    }
    out
}

/// Parses the command line into `P`: `--help` and `--version` print to
/// standard output and give `Err(0)`; a command line clap does not accept
/// is one line on standard error, `PROGRAM: error: ...; see PROGRAM
/// --help`, and `Err(EXIT_USAGE)`.
pub fn parse_args<P: clap::Parser>(program: &str) -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| usage_exit(program, &e))
}

/// What [`parse_args`] does with clap's error `e`: prints it and gives the
/// exit status.
pub fn usage_exit(program: &str, e: &clap::Error) -> ExitCode {
    if e.use_stderr() {
        eprintln!("{}", usage_error(program, &usage_line(e)));
        ExitCode::from(EXIT_USAGE)
    } else {
        let _ = e.print();
        ExitCode::SUCCESS
    }
}

/// A usage error's line: `PROGRAM: error: WHAT (see PROGRAM --help)`.
pub fn usage_error(program: &str, what: &str) -> String {
    format!("{program}: error: {what} (see {program} --help)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The program's own about.
    #[derive(Debug, Parser)]
    #[command(name = "prog", version)]
    struct Cli {
        /// Required.
        #[arg(long)]
        listen: String,
        #[command(flatten)]
        verbosity: Verbosity,
    }

    fn cli(v: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("prog").chain(v.iter().copied()))
    }

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

    /// Whether `f` lets a record of `level` from `module` through.
    fn passes(f: &env_filter::Filter, module: &str, level: log::Level) -> bool {
        f.enabled(&Metadata::builder().level(level).target(module).build())
    }

    #[test]
    fn warnings_by_default_and_rust_log_sets_levels_per_module() {
        use log::Level::{Debug, Error, Info, Warn};
        let none = Verbosity::default();
        let f = filter(None, none).unwrap();
        assert_eq!(f.filter(), LevelFilter::Warn);
        assert!(passes(&f, "tee_remote", Warn) && !passes(&f, "tee_remote", Info));
        let f = filter(Some("debug"), none).unwrap();
        assert!(passes(&f, "host_tee", Debug));
        let f = filter(Some("tee_remote=debug"), none).unwrap();
        assert!(passes(&f, "tee_remote::server", Debug));
        assert!(!passes(&f, "host_tee", Info), "others keep warnings");
        assert!(passes(&f, "host_tee", Warn));
        let f = filter(Some("off"), none).unwrap();
        assert!(!passes(&f, "host_tee", Error));
        let e = filter(Some("tee_remote=loud"), none).unwrap_err();
        assert!(e.starts_with("RUST_LOG=tee_remote=loud: "), "{e}");
        assert!(e.contains("want LEVEL or MODULE=LEVEL"), "{e}");
    }

    #[test]
    fn v_and_q_set_the_level_over_rust_logs_but_not_its_modules() {
        use log::Level::{Debug, Error, Info, Trace, Warn};
        let v = |verbose, quiet| Verbosity { verbose, quiet };
        assert_eq!(v(0, 0).level(), None);
        assert_eq!(v(1, 0).level(), Some(LevelFilter::Info));
        assert_eq!(v(2, 0).level(), Some(LevelFilter::Debug));
        assert_eq!(v(9, 0).level(), Some(LevelFilter::Trace));
        assert_eq!(v(0, 1).level(), Some(LevelFilter::Error));
        assert_eq!(v(0, 2).level(), Some(LevelFilter::Off));
        let f = filter(None, v(1, 0)).unwrap();
        assert!(passes(&f, "x", Info) && !passes(&f, "x", Debug));
        let f = filter(Some("error"), v(2, 0)).unwrap();
        assert!(passes(&f, "x", Debug), "-vv over RUST_LOG=error");
        let f = filter(Some("trace"), v(0, 1)).unwrap();
        assert!(passes(&f, "x", Error) && !passes(&f, "x", Warn));
        let f = filter(Some("tee_remote=trace"), v(0, 2)).unwrap();
        assert!(!passes(&f, "x", Error));
        assert!(
            passes(&f, "tee_remote", Trace),
            "the module's directive stays"
        );
        assert_eq!(f.filter(), LevelFilter::Trace);
    }

    #[test]
    fn the_flags_parse_and_exclude_each_other() {
        let c = cli(&["--listen", "a", "-vv"]).unwrap();
        assert_eq!(
            c.verbosity,
            Verbosity {
                verbose: 2,
                quiet: 0
            }
        );
        assert_eq!(c.listen, "a");
        let c = cli(&["--listen", "a", "--quiet"]).unwrap();
        assert_eq!(c.verbosity.level(), Some(LevelFilter::Error));
        assert!(cli(&["--listen", "a", "-v", "-q"]).is_err());
    }

    #[test]
    fn a_usage_error_is_one_line_with_what_clap_says() {
        let one = |v: &[&str]| usage_line(&cli(v).unwrap_err());
        assert_eq!(
            one(&["--listen", "a", "--bogus"]),
            "unexpected argument '--bogus' found"
        );
        assert_eq!(
            one(&[]),
            "the following required arguments were not provided: --listen <LISTEN>"
        );
        let e = one(&["--listn", "a"]);
        assert!(
            e.starts_with(
                "unexpected argument '--listn' found; tip: a similar argument exists: '--listen'"
            ),
            "{e}"
        );
        for e in [one(&["--bogus"]), one(&[]), one(&["--listen"])] {
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(usage_error("prog", "x"), "prog: error: x (see prog --help)");
        let help = cli(&["--help"]).unwrap_err();
        assert!(!help.use_stderr(), "--help goes to standard output");
    }
}
