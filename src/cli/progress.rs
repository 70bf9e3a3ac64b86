//! The terminal reporter: an indicatif bar on stderr (hidden when stderr is not a terminal or
//! with `-q`) and warnings printed above it.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use gopack::progress::{Reporter, Warning};

/// Shows progress and warnings on stderr.
pub struct TerminalReporter {
    bar: ProgressBar,
    quiet: bool,
}

impl TerminalReporter {
    /// A reporter; `quiet` hides everything but errors.
    pub fn new(quiet: bool) -> Self {
        let visible = !quiet
            && std::io::stderr().is_terminal()
            && std::env::var_os("GOPACK_NO_PROGRESS").is_none();
        // No length until the work is measured: a spinner, not a full bar at `0 B/0 B`.
        let bar = ProgressBar::with_draw_target(
            None,
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        TerminalReporter { bar, quiet }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Reporter for TerminalReporter {
    fn stage(&self, name: &str) {
        self.bar.set_message(name.to_string());
        self.bar.set_position(0);
    }
    fn scanned(&self, _entries: u64, bytes: u64) {
        // A bar of fixed width (about 75 columns in all), and no ETA: the first seconds' rate
        // says nothing about the rest.
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        ) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_length(bytes);
    }
    fn analysed(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn written(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn warning(&self, warning: &Warning) {
        if !self.quiet {
            let text = warning.report();
            self.bar.suspend(|| eprintln!("{text}"));
        }
    }
}
